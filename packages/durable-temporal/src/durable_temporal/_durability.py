"""`TemporalDurability`: the capability form of `TemporalAgent` (`Agent(..., capabilities=[TemporalDurability()])`)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from contextvars import ContextVar
from datetime import timedelta
from typing import Any, ClassVar, cast

from pydantic_ai import messages as pai_messages
from pydantic_ai.agent import AbstractAgent, AgentRunResult, EventStreamHandler
from pydantic_ai.capabilities import AbstractCapability, CombinedCapability, WrapperCapability
from pydantic_ai.capabilities.abstract import WrapModelRequestHandler, WrapRunHandler
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelResponse
from pydantic_ai.models import Model, ModelRequestContext
from pydantic_ai.output import OutputDataT
from pydantic_ai.tools import AgentDepsT, RunContext
from pydantic_ai.toolsets import AbstractToolset, FunctionToolset
from pydantic_core import PydanticSerializationError
from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.workflow import ActivityConfig

from durable_kernel import (
    HAS_DEFAULT_RUN_ID_HOOK,
    DepsResolver,
    DurabilityCapability,
    DurableAgentRunEvents,
    DynamicToolset,
    EventStreamTopic,
    ExternalEventWait,
    NonRetryableModelErrors,
    OperationUnit,
    RequestModelResolver,
    agent_root_capability,
    disable_threads,
    forward_event_batches,
    is_model_stream_event,
    is_permanent_model_error,
    request_context_with_model,
    run_may_be_instrumented,
    scoped_context_value,
    topic_to_read,
    with_deps_resolver,
)

from ._async_library import asyncio_named_for_anyio
from ._binding import EventStreamHandlerParams, TemporalBinding, build_binding, serialization_user_error
from ._config import (
    LocalActivities,
    ToolSetting,
    check_local_streaming,
    execute_unit,
    local_scope,
    merge_activity_config,
    validated_activity_configs,
)
from ._continue_as_new import ContinueAsNewAfter, ContinueAsNewHandler, continue_as_new_policy
from ._deps_refs import deps_for_activity
from ._event_dispatch import is_model_request_stream, tool_event_order, with_first_event_pulled
from ._live_events import (
    ANY_OUTPUT,
    check_hosted_stream,
    publish_agent_result,
    publish_workflow_events,
    require_event_stream_topic,
    stream_agent_events,
)
from ._model import TemporalProviderFactory
from ._replay_tracing import ReplaySafeTelemetry
from ._run_context import TemporalRunContext
from ._toolset import TemporalWrapperToolset, temporalize_toolset
from ._versioning import EVENT_BATCHES_PATCH, recorded

__all__ = ('TemporalDurability',)

DEFAULT_MODEL_HEARTBEAT_TIMEOUT = timedelta(seconds=30)
"""The `heartbeat_timeout` of the capability form's model activities when no config sets one (pydantic-ai 2.x's)."""

STABLE_DEFAULT_RUN_ID_PATCH = 'pydantic_ai:stable_default_run_id'
"""The patch under which pydantic-ai 2.x's `TemporalDurability` gives a run a workflow-derived `run_id`: ours asks for
the same patch at the same point, so that the two record (and replay) the same marker."""

"""While a workflow's request is inside `_wrap_durable_model_request` (its hooks run there on 2.68+): the key of the
model the request step's before-chain left, which an attempt on that model goes back to."""

# Set while pydantic-ai 1.107 binds the capability for a run (it has no binding at `Agent(...)`): see `for_run`.
_binding_for_run: ContextVar[bool] = ContextVar('durable_temporal_binding_for_run', default=False)


class TemporalDurability(DurabilityCapability[AgentDepsT]):
    """Makes an agent durable on Temporal as a capability: `Agent(..., capabilities=[TemporalDurability()])`.

    Inside a workflow the agent loop runs in workflow code and its I/O in activities named after the agent
    (`agent__{name}__...`): model requests (plain and streamed), function-tool calls, dynamic-toolset listing and calls,
    MCP listing, calls and instructions, and, with an `event_stream_handler`, each event that is not part of a model's
    streamed response (those reach the handler live, inside the streamed model activity). Outside a workflow the
    capability changes nothing.

    The activities are the same objects [`TemporalAgent`][durable_temporal.TemporalAgent] builds for the same agent,
    under the names pydantic-ai 2.x's own `TemporalDurability` gives them. Register them with
    [`AgentPlugin(agent)`][durable_temporal.AgentPlugin] or a workflow's `__pydantic_ai_agents__`; or read
    `TemporalDurability.from_agent(agent).temporal_activities`.
    """

    engine_name = 'Temporal'
    container_name = 'a Temporal workflow'
    unit_plural = 'activities'
    _workspace_advice = (
        'The workspace does not cross into activities either: give the tools that need files or commands their own '
        'access inside their activities (for example through `deps`), or use the workspace outside {container}.'
    )

    def __init__(
        self,
        *,
        models: Mapping[str, Model] | None = None,
        event_stream_handler: EventStreamHandler[AgentDepsT] | None = None,
        event_stream_topic: str | EventStreamTopic | None = None,
        name: str | None = None,
        deps_type: type[AgentDepsT] | None = None,
        activity_config: ActivityConfig | None = None,
        model_activity_config: ActivityConfig | None = None,
        event_stream_handler_activity_config: ActivityConfig | None = None,
        toolset_activity_config: dict[str, ActivityConfig] | None = None,
        run_context_type: type[TemporalRunContext[AgentDepsT]] = TemporalRunContext[AgentDepsT],
        continue_as_new: ContinueAsNewHandler[AgentDepsT] | None = None,
        non_retryable_model_errors: NonRetryableModelErrors = is_permanent_model_error,
        provider_factory: TemporalProviderFactory | None = None,
        tool_activity_config: Mapping[str, Mapping[str, ToolSetting]] | None = None,
        deps_resolver: DepsResolver[AgentDepsT, Any] | None = None,
        continue_as_new_after: ContinueAsNewAfter | None = None,
        local_activities: LocalActivities = False,
    ) -> None:
        """Configure the capability; it is bound to an agent (and its activities built) when attached.

        Args:
            models: Model instances that `run(model=...)` may select inside a workflow (pass the registered
                instance), by key. The agent's own model is always available. The key `'default'` is reserved.
            event_stream_handler: Handler of the run's events. Inside a workflow, a model's streamed events reach it
                live inside the streamed model activity, and every other event in its own
                `event_stream_handler` activity.
            event_stream_topic: Publish the run's events to this Workflow Stream topic (a name, or a
                [`WorkflowStreamTopic`][durable_temporal.WorkflowStreamTopic] to choose the events and the batch
                interval), for callers outside the workflow to read with `stream_agent_events`. The workflow must host
                an [`AgentEventStream`][durable_temporal.AgentEventStream]. Needs temporalio >= 1.27.0.
            name: Unique name used in the activity names; defaults to the agent's `name`.
            deps_type: The type activities decode `deps` as; defaults to the agent's `deps_type`.
            activity_config: Base config of every activity (default: 60 s start-to-close). `UserError` and
                `PydanticUserError` are always non-retryable. The dict and its retry policy are not modified.
            model_activity_config: Config merged on top of the base for the model activities.
            event_stream_handler_activity_config: Config merged on top of the base for the event-handler activities.
            toolset_activity_config: Configs by toolset id, merged on top of the base for that toolset's activities.
            run_context_type: The `TemporalRunContext` (sub)class that carries the run context into activities.
            continue_as_new: Inside a workflow, called with the run context right before a model request when Temporal
                suggests continuing as new (`workflow.info().is_continue_as_new_suggested()`) or
                `continue_as_new_after` is reached. It continues the workflow as new, usually with
                [`hand_over`][durable_temporal.hand_over], or returns to let the request go ahead (it is asked again
                before the next one). See [`ContinueAsNewHandler`][durable_temporal.ContinueAsNewHandler].
            non_retryable_model_errors: The model errors that fail a model activity at once, whatever its retry
                policy says: exception classes, or a function `error -> bool` (default:
                [`is_permanent_model_error`][durable_kernel.is_permanent_model_error]).
            provider_factory: Builds the provider of a model given as a string inside the model activity:
                `(run_context, provider_name) -> Provider`.
            tool_activity_config: Configs by toolset id then tool name, merged on top of the toolset's. `False` runs
                an `async` function tool in workflow code (no activity);
                [`LocalActivity(config)`][durable_temporal.LocalActivity] runs the tool's calls as local activities.
            deps_resolver: Sends `deps` to activities as a small reference and rebuilds them in each activity (see
                [`DepsResolver`][durable_kernel.DepsResolver]).
            continue_as_new_after: A size past which `continue_as_new` is called too: history events or bytes, or
                model requests in this workflow run (see [`ContinueAsNewAfter`][durable_temporal.ContinueAsNewAfter]).
                Needs `continue_as_new`.
            local_activities: Run units as local activities, under the same names and configs: `'model'` the model
                requests, `'tools'` the toolsets' activities, `True` both; as
                for [`TemporalAgent`][durable_temporal.TemporalAgent]. Model requests cannot be local with an
                `event_stream_handler` or `event_stream_topic`.

        Raises:
            UserError: `continue_as_new_after` is given without `continue_as_new`, `event_stream_topic` is given
                with a temporalio older than 1.27.0, or local model requests would be streamed.
        """
        # Checked here, at construction, as in the wrapper form (the binding is built later).
        continue_as_new_policy(continue_as_new, continue_as_new_after)
        self.continue_as_new: ContinueAsNewHandler[AgentDepsT] | None = continue_as_new
        """Called before a model request when the workflow should continue as new (`None`: never)."""
        self.continue_as_new_after: ContinueAsNewAfter | None = continue_as_new_after
        """The limits past which `continue_as_new` is called, besides Temporal's suggestion."""
        self._event_stream_topic = require_event_stream_topic(event_stream_topic)
        super().__init__(models=models, event_stream_handler=event_stream_handler, name=name)
        configs = validated_activity_configs(
            activity_config=activity_config,
            model_activity_config=model_activity_config,
            event_stream_handler_activity_config=event_stream_handler_activity_config,
            toolset_activity_config=toolset_activity_config,
            tool_activity_config=tool_activity_config,
        )
        self.activity_config: ActivityConfig = merge_activity_config(configs.activity_config)
        """The base config of every activity (ours merged with `activity_config=`)."""
        self.run_context_type: type[TemporalRunContext[AgentDepsT]] = with_deps_resolver(
            run_context_type, deps_resolver
        )
        """The context type carrying the run context into activities."""
        self.deps_resolver = deps_resolver
        self._deps_type = deps_type
        # Merged now, as pydantic-ai 2.x's capability does, so that these are the configs the activities get. Model
        # requests heartbeat (see `heartbeating`), so by default a dead worker's request is retried after 30 s rather
        # than at its start-to-close timeout; `heartbeat_timeout` in either config replaces it (`None` turns it off).
        self._model_activity_config = merge_activity_config(
            {'heartbeat_timeout': DEFAULT_MODEL_HEARTBEAT_TIMEOUT}, self.activity_config, configs.model_activity_config
        )
        self._event_stream_handler_activity_config = merge_activity_config(
            self.activity_config, configs.event_stream_handler_activity_config
        )
        self._toolset_activity_config = configs.toolset_activity_config
        self._tool_activity_config = configs.tool_activity_config
        self._non_retryable_model_errors = non_retryable_model_errors
        self._provider_factory = provider_factory
        self._local = local_scope(local_activities)
        check_local_streaming(
            self._local, event_stream_handler=event_stream_handler, event_stream_topic=self._event_stream_topic
        )
        self._binding: TemporalBinding[AgentDepsT] | None = None

    # --- binding -------------------------------------------------------------------------------------------------

    @property
    def in_durable_context(self) -> bool:
        """Whether the code runs in a Temporal workflow."""
        return workflow.in_workflow()

    def _check_bindable(self) -> None:
        # On pydantic-ai 1.107 the per-run binding happens in the workflow: the sandbox imports the workflow's module
        # again, so its agents are new objects. Their activities were registered from the worker's own copy of the
        # module (same agent, same names), so building them here again only gives workflow code their names.
        if workflow.in_workflow() and not _binding_for_run.get():
            raise UserError(
                'An agent with `TemporalDurability` must be created outside a Temporal workflow, so that its '
                'activities can be registered on the worker before the workflow runs. Create the agent at module '
                'level (or in worker setup code) and use it from the workflow.'
            )

    async def for_run(self, ctx: RunContext[AgentDepsT]) -> AbstractCapability[AgentDepsT]:
        """The copy bound to the run's agent (bound now on pydantic-ai 1.107, which has no `for_agent`).

        A run in workflow code that may emit spans gets `ReplaySafeTelemetry` beside it here, which keeps the spans
        of replayed workflow code out of traces; it must wrap pydantic-ai's `Instrumentation`, outside this
        (innermost) capability, so it comes as a sibling. An uninstrumented run is not given it: it would only cost
        the run time. Where pydantic-ai does not show `for_run` an `Instrumentation` given in the run's
        `capabilities=` (1.107, 2.x before 2.68: `FOR_RUN_SEES_RUN_INSTRUMENTATION`), every run here gets it.
        """
        with scoped_context_value(_binding_for_run, True):
            bound = await super().for_run(ctx)
        if not workflow.in_workflow():
            return bound
        if ctx.agent is not None and not run_may_be_instrumented(ctx.agent, ctx=ctx):
            return bound
        if ctx.agent is not None and _inside_a_wrapper(agent_root_capability(ctx.agent), self):
            # Under a `WrapperCapability` a sibling would be nested in the wrapper with this capability, and
            # pydantic-ai refuses a wrapper whose leaves are in two ordering tiers ('outermost' and 'innermost'):
            # such a run is durable as any other, only its spans are not kept out of traces on replay.
            return bound
        return CombinedCapability([ReplaySafeTelemetry(), bound])

    def _bind_to_agent(self, agent: AbstractAgent[AgentDepsT, Any]) -> None:
        # Built on first use (registration, or the first run), not here: pydantic-ai 2.x binds at `Agent(...)`, before
        # toolsets added with `@agent.toolset` exist.
        self._binding = None

    def _bound(self) -> TemporalBinding[AgentDepsT]:
        if self._binding is not None:
            return self._binding
        agent = self.agent
        if agent is None:
            raise UserError(
                'This TemporalDurability is not bound to an agent: attach it with `Agent(..., capabilities=[...])` '
                'and use `TemporalDurability.from_agent(agent)`, which returns the bound instance.'
            )
        deps_resolver = self.deps_resolver
        deps_type = self._deps_type or agent.deps_type
        handler = self.event_stream_handler
        self._binding = build_binding(
            agent,
            agent_name=self.name,
            event_stream_handler=lambda: handler,
            model_event_stream_handler=handler,
            models=self.models,
            provider_factory=self._provider_factory,
            activity_config=self.activity_config,
            model_activity_config=self._model_activity_config,
            toolset_activity_config=self._toolset_activity_config,
            tool_activity_config=self._tool_activity_config,
            deps_type=deps_type if deps_resolver is None else deps_resolver.wire_type(),
            run_context_type=self.run_context_type,
            temporalize_toolset_func=temporalize_toolset,
            non_retryable_model_errors=self._non_retryable_model_errors,
            event_stream_topic=self._event_stream_topic,
            continue_as_new=self.continue_as_new,
            continue_as_new_after=self.continue_as_new_after,
            local=self._local,
            validate_args_in_activities=True,
            operations=self.capability_operations,
        )
        self._binding.run_model_key = self.operation_model_key
        return self._binding

    # Operations on a request's `ModelRequestContext` (a durable `before_model_request`, ...) run in their activity too,
    # the context crossing as its projection, as pydantic-ai 2.78's capability runs them.
    _model_request_operations: ClassVar[bool] = True

    @property
    def _operation_unit(self) -> OperationUnit | None:
        # A durable capability operation called in workflow code runs in its activity,
        # `agent__{name}__capability__{id}__{operation}`, with no patch marker: as pydantic-ai 2.78's capability.
        return self._bound().run_operation

    @property
    def _request_model_resolver(self) -> RequestModelResolver | None:
        return self._bound().resolve_request_model

    @property
    def event_stream_topic(self) -> EventStreamTopic | None:
        """The topic the run's events are published to (`event_stream_topic=`), if any."""
        return self._event_stream_topic

    def _external_event_wait(self) -> ExternalEventWait | None:
        # Our durable wait (pydantic-ai 2.78's `wait_for_external_event` in a workflow): a signal ends it.
        return self._bound().external_event_wait

    @property
    def temporal_activities(self) -> list[Callable[..., Any]]:
        """The activities to register on the worker: model activities, each toolset's, and the event handler's.

        Raises:
            UserError: This instance is not bound to an agent (see `from_agent`).
        """
        binding = self._bound()
        if self.event_stream_handler is None:
            # pydantic-ai 2.x registers the event activity only for a handler: the same set of names.
            return [a for a in binding.activities if a is not binding.event_stream_handler_activity]
        return list(binding.activities)

    @property
    def temporal_workflows(self) -> list[type]:
        """The child workflow types to register on the worker, read now.

        One per function toolset with a tool whose metadata selects a child workflow
        (`{'temporal': {'child_workflow': ChildWorkflowConfig(...)}}`).

        `AgentPlugin` and `PydanticAIPlugin` register them; a worker given only `temporal_activities` does not.

        Raises:
            UserError: This instance is not bound to an agent (see `from_agent`).
        """
        return self._bound().child_workflows()

    @property
    def event_stream_handler_activity(self) -> Callable[..., Any]:
        """The activity that calls `event_stream_handler` with one event (see `from_agent` for the bound instance)."""
        return self._bound().event_stream_handler_activity

    # --- run hooks -----------------------------------------------------------------------------------------------

    def get_default_run_id(self) -> str | None:
        """In a workflow, a replay-stable `run_id` for a run started without one (pydantic-ai 2.x calls this hook).

        The id is the workflow run's id and a UUID from the workflow's deterministic random sequence.
        """
        if not self.in_durable_context or not workflow.patched(STABLE_DEFAULT_RUN_ID_PATCH):
            return None
        return f'{workflow.info().run_id}:{workflow.uuid4()}'

    async def _wrap_durable_run(self, ctx: RunContext[AgentDepsT], *, handler: WrapRunHandler) -> AgentRunResult[Any]:
        """In a workflow: sync callbacks run inline (the sandbox forbids threads), replayed work starts no spans."""
        # pydantic-ai 1.107 never asks for a default run id (`get_default_run_id`), so the patch is asked for here, at
        # the start of the run as there: a run's history then replays on either line and on pydantic-ai 2.x's own
        # capability, all of which expect the marker before the first activity. And the UUID 2.x draws for that id
        # under the marker is drawn here too, unused: the workflow's random sequence then stays the same on both lines,
        # and with it every later `workflow.uuid4()` (a child workflow's default id, an external event's key), so a run
        # moved between the lines replays. Under the marker only: a history recorded without it (1.107's reference, a
        # run given its `run_id` on 2.x) drew nothing.
        if not HAS_DEFAULT_RUN_ID_HOOK and workflow.patched(STABLE_DEFAULT_RUN_ID_PATCH):
            workflow.uuid4()
        topic = self._event_stream_topic
        if topic is not None:
            check_hosted_stream()  # before any activity: a missing stream is a setup error
        with disable_threads(), asyncio_named_for_anyio():
            result = await handler()
        if topic is not None:
            # Published here, once the run is done: workflow code, so exactly once (a replay rebuilds the log).
            publish_agent_result(topic, result)
        return result

    @property
    def has_wrap_run_event_stream(self) -> bool:
        """Streams are wrapped for a handler, and in a workflow for a topic (pydantic-ai then streams every node)."""
        return super().has_wrap_run_event_stream or (self._event_stream_topic is not None and self.in_durable_context)

    async def wrap_run_event_stream(
        self, ctx: RunContext[AgentDepsT], *, stream: AsyncIterable[pai_messages.AgentStreamEvent]
    ) -> AsyncIterable[pai_messages.AgentStreamEvent]:
        """In a workflow with a topic: the events of workflow code are published as they come, then handled."""
        topic = self._event_stream_topic
        if topic is not None and self.in_durable_context:
            stream = publish_workflow_events(topic, stream)
        async for event in super().wrap_run_event_stream(ctx, stream=stream):
            yield event

    def stream_agent_events(
        self,
        client: Client,
        handle: WorkflowHandle[Any, Any],
        *,
        output_type: type[OutputDataT] = ANY_OUTPUT,
        topic: str | EventStreamTopic | None = None,
        from_offset: int = 0,
        poll_cooldown: timedelta = timedelta(milliseconds=100),
    ) -> DurableAgentRunEvents[OutputDataT]:
        """Subscribe to the events a run of this agent publishes to its `event_stream_topic`.

        See [`stream_agent_events`][durable_temporal.stream_agent_events].

        Args:
            client: A Temporal client configured with `PydanticAIPlugin`.
            handle: The handle of the workflow running the agent.
            output_type: The agent's output type, to decode the result into.
            topic: The topic to read; defaults to this capability's `event_stream_topic`.
            from_offset: The stream offset to start from, inclusive (`events.offset + 1` resumes).
            poll_cooldown: How long to wait between polls when no new events are ready.

        Raises:
            UserError: Neither this capability nor the call names a topic.
        """
        chosen = topic_to_read(
            topic,
            self._event_stream_topic,
            'This `TemporalDurability` has no `event_stream_topic`, so there is no stream to subscribe to: create '
            'it with `TemporalDurability(event_stream_topic="agent-events")` (its workflow hosting an '
            '`AgentEventStream`), or pass `topic=` to `stream_agent_events`.',
        )
        return stream_agent_events(
            client, handle, chosen, output_type=output_type, from_offset=from_offset, poll_cooldown=poll_cooldown
        )

    async def on_run_error(self, ctx: RunContext[AgentDepsT], *, error: BaseException) -> AgentRunResult[Any]:
        """In a workflow, a value an activity could not serialize becomes a `UserError` saying what to do."""
        if self.in_durable_context and isinstance(error, PydanticSerializationError):
            raise serialization_user_error(error, 'TemporalDurability(deps_resolver=...)') from error
        raise error

    def get_wrapper_toolset(self, toolset: AbstractToolset[AgentDepsT]) -> AbstractToolset[AgentDepsT] | None:
        """In a workflow: every leaf toolset replaced by its Temporal twin (outside: unchanged)."""
        if not self.in_durable_context:
            return None
        durable = self._bound().durable_toolsets

        def swap(leaf: AbstractToolset[AgentDepsT]) -> AbstractToolset[AgentDepsT]:
            if isinstance(leaf, TemporalWrapperToolset):
                return leaf
            twin = durable.get(leaf.id) if leaf.id is not None else None
            if twin is not None:
                return twin
            if isinstance(leaf, DynamicToolset) or (isinstance(leaf, FunctionToolset) and leaf.tools):
                raise UserError(
                    f'The toolset {leaf.id or leaf.label!r} was given at run time inside a Temporal workflow: its '
                    'activities do not exist on the worker. Give it to the agent (`Agent(toolsets=[...])`) so that '
                    'TemporalDurability makes it durable, or run the agent outside the workflow.'
                )
            return leaf

        return toolset.visit_and_replace(swap)

    async def _wrap_durable_model_request(
        self,
        ctx: RunContext[AgentDepsT],
        *,
        request_context: ModelRequestContext,
        handler: WrapModelRequestHandler,
    ) -> ModelResponse:
        """In a workflow: the request goes to the model activity, which rebuilds the same model by its key."""
        durable_model = self._bound().model
        # A registry key, `None` for the agent's model instance, or the string the model was selected by (rebuilt by
        # the same string in the activity).
        key = self.request_model_key(ctx, request_context)
        # The routing state: the key of the request's model (a hook's swap changes it, an attempt back on the step's
        # model goes back to it).
        with self._routing_request([key]), durable_model.using_model(key):
            return await handler(request_context_with_model(request_context, durable_model))

    def _route_request_model(
        self, ctx: RunContext[AgentDepsT], request_context: ModelRequestContext, state: Any, *, attempt: bool
    ) -> None:
        """A model a hook or the attempt loop set after the wrap goes to the model activity too, by its key."""
        step = cast('list[str | None]', state)
        if request_context.model is not self._bound().model:
            key = self._route(ctx, request_context)
            if not attempt:
                step[0] = key
        elif attempt:
            # Back on the step's model (the loop restores the request as the before-chain left it): its key again.
            self._bound().model.use_key(step[0])

    def _route(self, ctx: RunContext[AgentDepsT], request_context: ModelRequestContext) -> str | None:
        """Send the request to the model activity of the model a hook set on it, by its key (returned)."""
        durable_model = self._bound().model
        key = self.request_model_key(ctx, request_context)
        # Set, not scoped: the wrap's own `using_model` restores the key when the request ends.
        durable_model.use_key(key)
        request_context.model = durable_model
        return key

    def _durable_event_stream(
        self,
        ctx: RunContext[AgentDepsT],
        stream: AsyncIterable[pai_messages.AgentStreamEvent],
        handler: EventStreamHandler[AgentDepsT],
    ) -> AsyncIterable[pai_messages.AgentStreamEvent]:
        return self._dispatch_events(ctx, stream)

    async def _dispatch_events(
        self, ctx: RunContext[AgentDepsT], stream: AsyncIterable[pai_messages.AgentStreamEvent]
    ) -> AsyncIterator[pai_messages.AgentStreamEvent]:
        event_activity = self._bound().event_stream_handler_activity
        local = self._local.events

        async def send(events: list[pai_messages.AgentStreamEvent], *, batched: bool) -> None:
            kinds = ', '.join(event.event_kind for event in events)
            serialized, deps = deps_for_activity(self.run_context_type, ctx, local=local)
            if batched:
                params = EventStreamHandlerParams(event=None, serialized_run_context=serialized, events=events)
            else:
                params = EventStreamHandlerParams(event=events[0], serialized_run_context=serialized)
            summary = f'handle event: {kinds}' if len(events) == 1 else f'handle events: {kinds}'
            await execute_unit(
                event_activity,
                [params, deps],
                merge_activity_config({'summary': summary}, self._event_stream_handler_activity_config),
                local=local,
            )

        # The points where `TemporalAgent` decides its event behaviours, in its order, so that a workflow it started
        # (its markers are in the history) finishes on the capability; a new execution takes none of them.
        if is_model_request_stream(ctx):
            stream = await with_first_event_pulled(stream)
        with tool_event_order(ctx, recorded):
            if recorded(EVENT_BATCHES_PATCH):
                # As the wrapper's handler: the node's events in batches, sent while the node runs.
                seen: list[pai_messages.AgentStreamEvent] = []

                async def handled() -> AsyncIterator[pai_messages.AgentStreamEvent]:
                    async for event in stream:
                        seen.append(event)
                        if not is_model_stream_event(event):
                            yield event

                await forward_event_batches(handled(), functools.partial(send, batched=True))
                for event in seen:
                    yield event
                return
            async for event in stream:
                # A model's streamed events already reached the handler live, inside the streamed model activity: what
                # workflow code sees of them is the completed response replayed.
                if not is_model_stream_event(event):
                    await send([event], batched=False)
                yield event


def _inside_a_wrapper(root: AbstractCapability[Any], capability: AbstractCapability[Any]) -> bool:
    """Whether `capability` sits under a `WrapperCapability` in the tree `root`.

    Nested `CombinedCapability`s are not wrappers: pydantic-ai makes their leaves siblings.
    """
    if isinstance(root, CombinedCapability):
        return any(_inside_a_wrapper(child, capability) for child in root.capabilities)
    if isinstance(root, WrapperCapability):
        found: list[AbstractCapability[Any]] = []
        root.wrapped.apply(found.append)
        return any(leaf is capability for leaf in found) or root.wrapped is capability
    return False
