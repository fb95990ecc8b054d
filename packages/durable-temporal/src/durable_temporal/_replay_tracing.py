"""pydantic-ai's spans are not emitted again when a workflow replays, and nothing shared is changed for it.

The agent loop runs in workflow code, so a worker that resumes a workflow (after a restart, or after evicting it
from its cache) runs the loop again from the start, and pydantic-ai's instrumentation would emit the agent-run,
model-request and tool spans of the replayed part a second time.

Every durable run in workflow code that may emit spans (`durable_kernel.run_may_be_instrumented`: the agent's
`instrument`, `Agent.instrument_all(...)`, an `InstrumentedModel`, an `Instrumentation` capability of the agent, an
override or the run) gets `ReplaySafeTelemetry`, a capability of its own placed outside pydantic-ai's
`Instrumentation` (the wrapper form passes it with the run's capabilities; the capability form returns it beside its
bound copy from `for_run`), so it acts before the run span starts, for that run only. An uninstrumented run is not
given it: it would cost every hook of the run time and change nothing. (The capability form cannot see the run's
`capabilities=` where pydantic-ai does not show them to `for_run`, 1.107 and 2.x before 2.68: there every run in
workflow code gets it, as before.) Whether it is there changes no command the
workflow issues (it starts no activity or timer and draws nothing from the workflow's random source), so a history
recorded with it replays without it and the reverse. It gives each `Instrumentation` of the run
(the per-run copy pydantic-ai makes in its `for_run`: of the agent's capability, or of the one pydantic-ai builds from
`agent.instrument` or `Agent.instrument_all(...)`) a copy of its settings whose tracer is a `ReplayAwareTracer`. That tracer starts no span in workflow code that is replaying: it hands out a non-recording
span that carries the current span context, so spans started once the replay has caught up still find their parent.

Nothing else is changed: no pydantic-ai class is patched, and the user's settings, tracer and capability are left as
they are, so a plain agent in the same process, and the same agent run outside a workflow, trace as they always do.
The run context's `tracer` (what a tool may start its own spans with) stays the user's.

A span that began before a worker stopped and would have ended after it is not emitted by either worker (the first
never ended it, the second started it while replaying). Temporal's own tracing interceptor makes the same choice.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanKind, Tracer
from opentelemetry.util._decorator import _agnosticcontextmanager  # pyright: ignore[reportPrivateUsage]
from opentelemetry.util.types import Attributes
from pydantic_ai.capabilities import AbstractCapability, CapabilityOrdering, Instrumentation, WrapperCapability
from pydantic_ai.capabilities.abstract import WrapRunHandler
from pydantic_ai.models.instrumented import InstrumentationSettings
from pydantic_ai.run import AgentRunResult
from pydantic_ai.tools import RunContext
from temporalio import workflow

__all__ = ('ReplayAwareTracer', 'ReplaySafeTelemetry', 'replay_aware_settings')


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


def replay_aware_settings(settings: InstrumentationSettings) -> InstrumentationSettings:
    """A copy of `settings` whose tracer starts no span while a workflow replays (`settings` is left as it is).

    Args:
        settings: The instrumentation settings to copy.

    Returns:
        The copy, or `settings` itself when its tracer is replay-aware already.
    """
    if isinstance(settings.tracer, ReplayAwareTracer):
        return settings
    # A shallow copy: the providers, meters and options are shared, only the copy's tracer differs.
    replayable = copy.copy(settings)
    replayable.tracer = ReplayAwareTracer(settings.tracer)
    return replayable


def _copies_per_run(capability: Instrumentation) -> bool:
    # pydantic-ai's `Instrumentation.for_run` returns a fresh copy for every run: that copy, and only that, may be given
    # other settings. A subclass with its own `for_run` might return the user's instance itself.
    return type(capability).for_run is Instrumentation.for_run


class ReplaySafeTelemetry(AbstractCapability[Any]):
    """Keeps the telemetry of replayed workflow code out of traces, for one run, outside pydantic-ai's instrumentation.

    Added by durable-temporal to each durable run in workflow code that may emit spans (see the module docstring);
    outside a workflow it does nothing.
    """

    def get_ordering(self) -> CapabilityOrdering:
        """Outermost, around `Instrumentation`: the run span starts inside this capability's `wrap_run`."""
        return CapabilityOrdering(position='outermost', wraps=[Instrumentation])

    async def wrap_run(self, ctx: RunContext[Any], *, handler: WrapRunHandler) -> AgentRunResult[Any]:
        """In workflow code: the run's instrumentation gets replay-aware copies of its settings, then the run."""
        if workflow.in_workflow():
            for capability in ctx.capabilities.values():
                while isinstance(capability, WrapperCapability) and not isinstance(capability, Instrumentation):
                    capability = capability.wrapped
                if isinstance(capability, Instrumentation) and _copies_per_run(capability):
                    # The run's own copy (made by its `for_run`), not the agent's capability or the user's settings.
                    capability.settings = replay_aware_settings(capability.settings)
        return await handler()
