"""Continue-as-new for conversations that outlive one workflow history.

A workflow's history is capped (50 MB, 51,200 events). Model activities here receive message deltas, so a
conversation grows the history linearly, but an unbounded conversation still fills it: the workflow has to hand the
conversation over to a fresh run of itself (`workflow.continue_as_new`).

The hand-over ([`AgentHandover`][durable_temporal.AgentHandover]) carries the conversation, its usage, the deps (or
their `DepsResolver` reference), the live event stream's state, and where each agent's last model activity left the
conversation: the next run's first model activity names that activity (of the previous run) as its base and is sent
only the messages that follow, so the first activity after a hand-over is as small as any other.

The trigger lives in the durable model's workflow-side request, shared by both forms (`TemporalAgent` and
`TemporalDurability`): right before a model activity is scheduled, when Temporal suggests continuing as new or a
size the user set is reached, the user's `continue_as_new` handler runs with the run context. Everything the run
completed (model responses, tool results) is in `ctx.messages` by then, and the request about to be sent ends it, so
the next run sends that request and no completed call runs again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias, cast

from pydantic import TypeAdapter
from pydantic_ai.agent import AgentRunResult
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessage
from pydantic_ai.tools import AgentDepsT, RunContext
from pydantic_ai.usage import RunUsage, UsageLimits
from temporalio import workflow

from ._message_history import HistoryBase
from ._workflow_state import PerWorkflow

if TYPE_CHECKING:
    from temporalio.contrib.workflow_streams import WorkflowStreamState

    from ._live_events import AgentEventStream
    from ._model import TemporalModel

__all__ = (
    'AgentHandover',
    'ContinueAsNewAfter',
    'ContinueAsNewHandler',
    'ContinueAsNewPolicy',
    'continue_as_new_due',
    'hand_over',
)

ContinueAsNewHandler: TypeAlias = Callable[[RunContext[AgentDepsT]], Awaitable[None] | None]
"""A function (sync or async) that continues the workflow as new from inside an agent run.

It is called with the run's `RunContext` right before a model request, when Temporal suggests continuing as new or
`continue_as_new_after` is reached, and calls `workflow.continue_as_new(...)` (usually through
[`hand_over`][durable_temporal.hand_over]) with what the workflow's run method needs to resume. Returning without
continuing lets the request go ahead; the handler is asked again before the next one.
"""


@dataclass(frozen=True, kw_only=True)
class ContinueAsNewAfter:
    """A size past which a workflow continues as new, besides when Temporal suggests it.

    Any limit reached is enough; a limit left `None` is not checked.
    """

    history_events: int | None = None
    """The workflow history's length in events (`workflow.info().get_current_history_length()`)."""
    history_bytes: int | None = None
    """The workflow history's size in bytes (`workflow.info().get_current_history_size()`)."""
    model_requests: int | None = None
    """The model requests the agent sent in this workflow run (the turns of a tool-calling conversation)."""

    def __post_init__(self) -> None:
        for name in ('history_events', 'history_bytes', 'model_requests'):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UserError(f'`ContinueAsNewAfter({name}=...)` must be a positive number, not {value!r}.')

    def reached(self, model_requests: int = 0) -> bool:
        """In workflow code: whether a limit is reached (`model_requests`: those sent in this run so far)."""
        info = workflow.info()
        return (
            (self.history_events is not None and info.get_current_history_length() >= self.history_events)
            or (self.history_bytes is not None and info.get_current_history_size() >= self.history_bytes)
            or (self.model_requests is not None and model_requests >= self.model_requests)
        )


def continue_as_new_due(after: ContinueAsNewAfter | None = None) -> bool:
    """In workflow code: whether to continue as new now, Temporal suggesting it or a limit of `after` reached.

    For workflows that decide between agent runs (a chat answering one prompt per run); `model_requests` counts
    nothing here (there is no agent run): use `history_events` or `history_bytes`.
    """
    return workflow.info().is_continue_as_new_suggested() or (after is not None and after.reached())


@dataclass
class AgentHandover:
    """What a workflow run hands over to the next one when it continues as new.

    Build it with [`hand_over`][durable_temporal.hand_over], pass it in the next run's input, and call `resume()` there.

    Type the workflow input's field as `AgentHandover | None` so the payload converter rebuilds it.
    """

    messages: list[ModelMessage]
    """The conversation so far: pass it as `message_history=` (it may end with the request the next run sends)."""
    usage: RunUsage = field(default_factory=RunUsage)
    """The usage so far: pass it as `usage=` so usage limits count the whole conversation."""
    usage_limits: UsageLimits | None = None
    """The run's usage limits, on pydantic-ai 2.x (whose run context has them; `None` on 1.x): pass them as
    `usage_limits=`, as they apply to the whole conversation's `usage` (the default limit is 50 requests)."""
    deps: Any = None
    """The run's deps as they cross into activities: with a `deps_resolver`, its reference (pass
    `resolver.resolve(handover.deps)`); otherwise the deps as JSON data (validate them as your deps type). `None`
    when the hand-over was made from a result (pass your deps yourself)."""
    history_bases: dict[str, HistoryBase] = field(default_factory=dict[str, HistoryBase])
    """By agent (first model activity name): the model activity of the previous run the first request builds on."""
    stream_state: Any = None
    """The `AgentEventStream`'s state (a `WorkflowStreamState` as data), if the workflow hosts one."""

    def resume(self) -> AgentHandover:
        """In the next run's workflow code, before the agent runs: carry over where each agent's conversation was sent.

        Each agent's first model activity then builds on the previous run's, instead of being sent the whole
        conversation. Returns `self`.
        """
        carried = _carried.current()
        for key, base in self.history_bases.items():
            carried[key] = (base, self.messages)
        return self

    @property
    def event_stream_state(self) -> WorkflowStreamState | None:
        """The carried stream state, for `AgentEventStream(prior_state=handover.event_stream_state)`."""
        if self.stream_state is None:
            return None
        from temporalio.contrib.workflow_streams import WorkflowStreamState

        return TypeAdapter(WorkflowStreamState).validate_python(self.stream_state)


_carried: PerWorkflow[dict[str, tuple[HistoryBase, list[ModelMessage]]]] = PerWorkflow(dict)
"""Per workflow instance: the bases `AgentHandover.resume` registered, taken by each agent's first request."""

_models: PerWorkflow[dict[str, TemporalModel]] = PerWorkflow(dict)
"""Per workflow instance: the durable models that scheduled a model activity, by first model activity name."""

_current_model: ContextVar[TemporalModel | None] = ContextVar('durable_temporal_handover_model', default=None)
"""The durable model whose request called the `continue_as_new` handler (to serialize the deps as it does)."""


def register_model(key: str, model: TemporalModel) -> None:
    """In workflow code: `model` schedules model activities in this run (its base goes into a hand-over)."""
    _models.current()[key] = model


def take_carried_base(key: str) -> tuple[HistoryBase, list[ModelMessage]] | None:
    """In workflow code: the base carried over for the agent whose first model activity is named `key`, once."""
    return _carried.current().pop(key, None)


@dataclass
class ContinueAsNewPolicy:
    """The `continue_as_new` handler and limits of one agent, applied by its durable model."""

    handler: ContinueAsNewHandler[Any] | None
    after: ContinueAsNewAfter | None

    async def before_model_request(self, ctx: RunContext[Any], model: TemporalModel, model_requests: int) -> None:
        """In workflow code, before a model activity: call the handler if Temporal suggests it or a limit is reached."""
        if self.handler is None or model_requests == 0:
            # A run that sent no model request yet would hand the same conversation over again, for ever: a run
            # started from a hand-over whose carried conversation alone passes `history_bytes` (or makes Temporal
            # suggest continuing) still makes one request first.
            return
        if not (workflow.info().is_continue_as_new_suggested() or (self.after and self.after.reached(model_requests))):
            return
        token = _current_model.set(model)
        try:
            result = self.handler(ctx)
            if isinstance(result, Awaitable):
                await result
        finally:
            _current_model.reset(token)


def continue_as_new_policy(
    handler: ContinueAsNewHandler[Any] | None, after: ContinueAsNewAfter | None
) -> ContinueAsNewPolicy | None:
    """The policy of `continue_as_new=` and `continue_as_new_after=` (checked together, for both forms)."""
    if after is not None and handler is None:
        raise UserError(
            '`continue_as_new_after=` needs a `continue_as_new=` handler, which knows what the next run of your '
            'workflow needs: e.g. `continue_as_new=lambda ctx: hand_over(ctx, lambda h: [MyInput(handover=h)])`.'
        )
    if handler is None:
        return None
    return ContinueAsNewPolicy(handler, after)


def _plain_usage(usage: RunUsage | Callable[[], RunUsage]) -> RunUsage:
    # `AgentRunResult.usage` is a method before pydantic-ai 1.107, a property (callable, deprecated so) on 1.107 and a
    # property on 2.x; a copy, as the run keeps counting into the original.
    value = usage if isinstance(usage, RunUsage) else usage()
    return RunUsage(**{f.name: getattr(value, f.name) for f in dataclasses.fields(RunUsage)})


async def hand_over(
    source: RunContext[Any] | AgentRunResult[Any],
    build_args: Callable[[AgentHandover], Sequence[Any]],
    *,
    events: AgentEventStream | None = None,
) -> NoReturn:
    """In workflow code: continue the workflow as new, handing the conversation over to the next run.

    Call it from a `continue_as_new` handler with its `RunContext` (mid-run: the next run finishes the agent run), or
    between agent runs with the last `AgentRunResult`. It builds the [`AgentHandover`][durable_temporal.AgentHandover],
    lets a hosted `AgentEventStream` release its subscribers (they follow the workflow to its next run and continue
    from their offset), waits for the workflow's handlers to finish, then calls `workflow.continue_as_new` with
    `build_args(handover)`.

    Args:
        source: The run context (in a `continue_as_new` handler) or the result of the last agent run.
        build_args: The arguments of the workflow's next run, given the hand-over.
        events: The `AgentEventStream` the workflow hosts, whose state the hand-over carries.
    """
    if isinstance(source, AgentRunResult):
        messages, usage, deps = source.all_messages(), _plain_usage(cast(Any, source).usage), None
        usage_limits = None
    else:
        messages, usage = list(source.messages), _plain_usage(source.usage)
        usage_limits = getattr(source, 'usage_limits', None)
        model = _current_model.get()
        deps = (
            model.run_context_type.serialize_deps(source.deps)
            if model is not None and source.deps is not None
            else source.deps
        )
    bases = {key: base for key, model in _models.current().items() if (base := model.history_base()) is not None}
    # A base registered by `resume()` that no request of this run took yet still names the earlier run's activity.
    for key, (base, _) in _carried.current().items():
        bases.setdefault(key, base)
    stream_state: Any = None
    if events is not None:
        events.stream.detach_pollers()
    await workflow.wait_condition(workflow.all_handlers_finished)
    if events is not None:
        stream_state = events.stream.get_state()
    handover = AgentHandover(
        messages=messages,
        usage=usage,
        usage_limits=usage_limits,
        deps=deps,
        history_bases=bases,
        stream_state=stream_state,
    )
    workflow.continue_as_new(args=build_args(handover))
