"""pydantic-ai's spans are not emitted again when a workflow replays.

The agent loop runs in workflow code, so a worker that resumes a workflow (after a restart, or after evicting it
from its cache) runs the loop again from the start, and pydantic-ai's instrumentation would emit the agent-run,
model-request and tool spans of the replayed part a second time. The tracer of the agent's instrumentation
settings is wrapped so that, in workflow code that is replaying, it starts no span: it hands out a non-recording
span that carries the current span context, so spans started once the replay has caught up still find their
parent. Outside workflow code the wrapper is transparent.

A span that began before a worker stopped and would have ended after it is not emitted by either worker (the first
never ended it, the second started it while replaying). Temporal's own tracing interceptor makes the same choice.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanKind, Tracer
from opentelemetry.util._decorator import _agnosticcontextmanager  # pyright: ignore[reportPrivateUsage]
from opentelemetry.util.types import Attributes
from pydantic_ai.agent import AbstractAgent
from pydantic_ai.models.instrumented import InstrumentationSettings
from temporalio import workflow

__all__ = ('ReplayAwareTracer', 'skip_spans_on_replay')


def _replaying() -> bool:
    return workflow.in_workflow() and workflow.unsafe.is_replaying()


class ReplayAwareTracer(Tracer):
    """A tracer that starts no span in workflow code that is replaying, and is the wrapped tracer elsewhere."""

    def __init__(self, tracer: Tracer) -> None:
        self.wrapped = tracer

    def start_span(
        self,
        name: str,
        context: otel_context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Span:
        """Start a span, or, while replaying, return a non-recording one with the current span context."""
        if _replaying():
            return NonRecordingSpan(trace.get_current_span(context).get_span_context())
        return self.wrapped.start_span(
            name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception
        )

    @_agnosticcontextmanager
    def start_as_current_span(
        self,
        name: str,
        context: otel_context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[Span]:
        """`start_span`, made the current span for the block."""
        if not _replaying():
            with self.wrapped.start_as_current_span(
                name,
                context,
                kind,
                attributes,
                links,
                start_time,
                record_exception,
                set_status_on_exception,
                end_on_exit,
            ) as span:
                yield span
            return
        span = self.start_span(name, context)
        with trace.use_span(span, end_on_exit=end_on_exit):
            yield span


def _replay_aware(settings: Any) -> None:
    if isinstance(settings, InstrumentationSettings) and not isinstance(settings.tracer, ReplayAwareTracer):
        settings.tracer = ReplayAwareTracer(settings.tracer)


def skip_spans_on_replay(agent: AbstractAgent[Any, Any]) -> None:
    """Make the instrumentation an agent run would use start no spans while its workflow replays.

    Covers the settings given with `Agent(instrument=...)` or `Agent.instrument_all(...)` (what
    `logfire.instrument_pydantic_ai()` sets) and those of `Instrumentation` capabilities. `instrument=True` builds
    new settings for every run, which cannot be wrapped: pass an `InstrumentationSettings` to get replay-aware spans.
    """
    from pydantic_ai import Agent
    from pydantic_ai.capabilities import Instrumentation

    _replay_aware(Agent._instrument_default)  # pyright: ignore[reportPrivateUsage]
    _replay_aware(getattr(agent, 'instrument', None))
    root = getattr(agent, '_root_capability', None)
    for capability in getattr(root, 'capabilities', None) or ():
        if isinstance(capability, Instrumentation):
            _replay_aware(capability.settings)
