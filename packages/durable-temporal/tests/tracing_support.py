"""An in-memory OpenTelemetry exporter and instrumentation settings shared with workflow code (passed through)."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic_ai.models.instrumented import InstrumentationSettings

EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))

# pydantic-ai is passed through the sandbox too, so these settings are one object for workflow code and the test,
# which checks that no run changes them.
SETTINGS = InstrumentationSettings(tracer_provider=PROVIDER)
