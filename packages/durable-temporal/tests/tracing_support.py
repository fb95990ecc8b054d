"""An in-memory OpenTelemetry exporter, instrumentation settings and a capability probe shared with workflow code (passed
through)."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.capabilities.abstract import WrapRunHandler
from pydantic_ai.models.instrumented import InstrumentationSettings
from pydantic_ai.run import AgentRunResult
from pydantic_ai.tools import RunContext

EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))

# pydantic-ai is passed through the sandbox too, so these settings are one object for workflow code and the test,
# which checks that no run changes them.
SETTINGS = InstrumentationSettings(tracer_provider=PROVIDER)


class CapabilityProbe(AbstractCapability[Any]):
    """Records the class names of each run's capabilities, seen from workflow code when the run starts."""

    def __init__(self) -> None:
        self.seen: list[set[str]] = []

    async def wrap_run(self, ctx: RunContext[Any], *, handler: WrapRunHandler) -> AgentRunResult[Any]:
        self.seen.append({type(capability).__name__ for capability in ctx.capabilities.values()})
        return await handler()


PROBE = CapabilityProbe()
