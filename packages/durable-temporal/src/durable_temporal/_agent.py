"""`TemporalAgent`: a pydantic-ai agent whose model requests and tool I/O run as Temporal activities."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterable, Callable, Generator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic_ai import messages as pai_messages
from pydantic_ai import models
from pydantic_ai.agent import AbstractAgent, AgentRunResult, EventStreamHandler
from pydantic_ai.exceptions import UserError
from pydantic_ai.models import Model
from pydantic_ai.output import OutputDataT
from pydantic_ai.tools import AgentDepsT, RunContext
from pydantic_ai.toolsets import AbstractToolset
from pydantic_core import PydanticSerializationError
from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.workflow import ActivityConfig

from durable_kernel import (
    HAS_DURABLE_OPERATIONS,
    DepsResolver,
    DurableAgentRunEvents,
    EventStreamTopic,
    ExternalEventWait,
    NonRetryableModelErrors,
    OperationDispatch,
    OverrideArguments,
    RunArguments,
    agent_root_capability,
    capability_operations,
    decodable_output_type,
    disable_threads,
    forward_event_batches,
    is_permanent_model_error,
    is_set,
    require_agent_name,
    scoped_context_value,
    topic_to_read,
    with_deps_resolver,
)

from ._async_library import asyncio_named_for_anyio
from ._binding import EventStreamHandlerParams, TemporalizeToolsetFunc, build_binding, serialization_user_error
from ._config import (
    LocalActivities,
    ToolSetting,
    check_local_streaming,
    execute_unit,
    local_scope,
    merge_activity_config,
    validated_activity_configs,
)
from ._continue_as_new import ContinueAsNewAfter, ContinueAsNewHandler
from ._deps_refs import deps_for_activity
from ._entry_points import TemporalEntryPoints
from ._event_dispatch import is_model_request_stream, tool_event_order, with_first_event_pulled
from ._live_events import (
    check_hosted_stream,
    publish_agent_result,
    publish_workflow_events,
    require_event_stream_topic,
    stream_agent_events,
)
from ._model import TemporalProviderFactory
from ._run_context import TemporalRunContext
from ._toolset import temporalize_toolset
from ._versioning import CAPABILITY_OPERATIONS_PATCH, EVENT_BATCHES_PATCH, patched

if TYPE_CHECKING:
    pass

__all__ = ('EventStreamHandlerParams', 'TemporalAgent', 'TemporalizeToolsetFunc')


class TemporalAgent(TemporalEntryPoints[AgentDepsT, OutputDataT]):
    """Wraps an agent so that, inside a Temporal workflow, its I/O runs in activities and its loop in the workflow.

    Model requests (plain and streamed), function-tool calls, dynamic-toolset listing and calls, and MCP listing,
    calls and instructions become activities named after the agent (`agent__{name}__...`); register them on the
    worker with `AgentPlugin(agent)` or a workflow's `__pydantic_ai_agents__`. Outside a workflow the agent behaves
    exactly like the wrapped one. Changes made to the wrapped agent's model or toolsets after wrapping are not seen.
    """

    _units_named = 'the activities recorded in workflow histories'
    _unit_plural = 'activities'
    _workspace_advice = (
        'The workspace does not cross into activities either: give the tools that need files or commands their own '
        'access inside their activities (for example through `deps`), or use the workspace outside {container}.'
    )

    def __init__(
        self,
        wrapped: AbstractAgent[AgentDepsT, OutputDataT],
        *,
        name: str | None = None,
        models: Mapping[str, Model] | None = None,
        provider_factory: TemporalProviderFactory | None = None,
        event_stream_handler: EventStreamHandler[AgentDepsT] | None = None,
        activity_config: ActivityConfig | None = None,
        model_activity_config: ActivityConfig | None = None,
        toolset_activity_config: dict[str, ActivityConfig] | None = None,
        tool_activity_config: Mapping[str, Mapping[str, ToolSetting]] | None = None,
        run_context_type: type[TemporalRunContext[AgentDepsT]] = TemporalRunContext[AgentDepsT],
        temporalize_toolset_func: TemporalizeToolsetFunc[AgentDepsT] = temporalize_toolset,
        non_retryable_model_errors: NonRetryableModelErrors = is_permanent_model_error,
        deps_resolver: DepsResolver[AgentDepsT, Any] | None = None,
        event_stream_topic: str | EventStreamTopic | None = None,
        continue_as_new: ContinueAsNewHandler[AgentDepsT] | None = None,
        continue_as_new_after: ContinueAsNewAfter | None = None,
        local_activities: LocalActivities = False,
    ) -> None:
        """Wrap an agent for use inside Temporal workflows.

        Args:
            wrapped: The agent to wrap.
            name: Unique agent name used in activity names; defaults to the wrapped agent's `name`.
            models: Model instances that `run(model=...)` may select inside a workflow, by instance or key. If the
                wrapped agent has no model, the first one is the default. The key `'default'` is reserved.
            provider_factory: Builds the provider of a model given as a string at run time inside a workflow:
                `(run_context, provider_name) -> Provider`, called inside the model activity.
            event_stream_handler: Handler to use instead of the wrapped agent's. Inside a workflow it runs in
                activities: with the live stream inside the model-request activity, then once per batch of tool
                events (the events the agent yields together share an activity, which runs while the tools do).
            activity_config: Base config of every activity (default: 60 s start-to-close). `UserError` and
                `PydanticUserError` are always non-retryable. The dict and its retry policy are not modified.
            model_activity_config: Config merged on top of the base for the model-request activities.
            toolset_activity_config: Configs by toolset id, merged on top of the base for that toolset's activities.
            tool_activity_config: Configs by toolset id then tool name, merged on top of the toolset's. `False` runs
                an `async` function tool in workflow code (no activity); not allowed for sync, dynamic or MCP tools.
                [`LocalActivity(config)`][durable_temporal.LocalActivity] runs the tool's calls as local activities.
            run_context_type: The `TemporalRunContext` (sub)class that carries the run context into activities.
            temporalize_toolset_func: Wraps each leaf toolset for Temporal; the default handles function, dynamic
                and MCP toolsets and leaves other toolsets to run in workflow code.
            non_retryable_model_errors: The model errors that fail a model activity at once, whatever its retry
                policy says: exception classes, or a function `error -> bool`. The default,
                [`is_permanent_model_error`][durable_kernel.is_permanent_model_error], covers a 4xx response other
                than 408, 409 and 429, a content filter and a `UserError`; `()` leaves every model error to the retry
                policy. A retried error whose provider asked to wait (`Retry-After`) waits that long before the next
                attempt, up to the policy's `maximum_interval`.
            deps_resolver: Sends `deps` to activities as a small reference (`reference(deps)`) and rebuilds them in
                each activity (`resolve(reference)`), so that clients and credentials never enter the workflow
                history. Workflow code passes live deps to `run()` (typically `deps_resolver.resolve(reference)`
                on a reference taken from the workflow's input). See [`DepsResolver`][durable_kernel.DepsResolver].
            event_stream_topic: Publish the run's events to this Workflow Stream topic (a name, or a
                [`WorkflowStreamTopic`][durable_temporal.WorkflowStreamTopic]) for callers outside the workflow to
                read with `stream_agent_events`: the model's stream from the model-request activity, every other event
                and the terminal `AgentRunResultEvent` from workflow code. The workflow must host an
                [`AgentEventStream`][durable_temporal.AgentEventStream]. Needs temporalio >= 1.27.0.
            continue_as_new: Inside a workflow, called with the run context right before a model request when Temporal
                suggests continuing as new (`workflow.info().is_continue_as_new_suggested()`) or
                `continue_as_new_after` is reached. It continues the workflow as new, usually with
                [`hand_over`][durable_temporal.hand_over], or returns to let the request go ahead (it is asked again
                before the next one). See [`ContinueAsNewHandler`][durable_temporal.ContinueAsNewHandler].
            continue_as_new_after: A size past which `continue_as_new` is called too: history events or bytes, or
                model requests in this workflow run (see [`ContinueAsNewAfter`][durable_temporal.ContinueAsNewAfter]).
                Needs `continue_as_new`.
            local_activities: Run units as local activities, under the same names and configs: `'model'` the model
                requests, `'tools'` the toolsets' activities, `True` both. A local
                activity runs on the workflow's worker inside its workflow task and is recorded as a marker: no
                server round trip per unit, but no heartbeats and retries inside the workflow task (see the
                "Local activities" section of the Temporal docs). Model requests cannot be local with an
                `event_stream_handler` or `event_stream_topic` (they are then streamed). Changing it for running
                workflows is not replay-safe.

        Raises:
            UserError: `continue_as_new_after` is given without `continue_as_new`, the agent has no name,
                `event_stream_topic` is given with a temporalio older than 1.27.0, or local model requests would be
                streamed.
        """
        super().__init__(wrapped)
        agent_name = require_agent_name(name or wrapped.name, engine='Temporal')
        self._name = agent_name
        self._event_stream_handler = event_stream_handler
        self._event_stream_topic = require_event_stream_topic(event_stream_topic)
        self.deps_resolver = deps_resolver
        # Every model, toolset and handler activity sends and rebuilds deps through the context type: binding the
        # resolver to it reaches them all (custom `temporalize_toolset_func` wrappers included).
        run_context_type = with_deps_resolver(run_context_type, deps_resolver)
        self.run_context_type = run_context_type
        configs = validated_activity_configs(
            activity_config=activity_config,
            model_activity_config=model_activity_config,
            toolset_activity_config=toolset_activity_config,
            tool_activity_config=tool_activity_config,
        )
        self.activity_config = merge_activity_config(configs.activity_config)
        local = local_scope(local_activities)
        check_local_streaming(
            local,
            event_stream_handler=self._user_event_stream_handler,
            event_stream_topic=self._event_stream_topic,
        )
        self._durable_run_active: ContextVar[bool] = ContextVar('durable_temporal_run_active', default=False)
        binding = build_binding(
            wrapped,
            agent_name=agent_name,
            event_stream_handler=lambda: self._user_event_stream_handler,
            model_event_stream_handler=self._user_event_stream_handler,
            models=models,
            provider_factory=provider_factory,
            activity_config=self.activity_config,
            model_activity_config=configs.model_activity_config,
            toolset_activity_config=configs.toolset_activity_config,
            tool_activity_config=configs.tool_activity_config,
            # What activities receive (and decode) as their `deps` argument: the reference, when there is a resolver.
            deps_type=self.deps_type if deps_resolver is None else deps_resolver.wire_type(),
            run_context_type=run_context_type,
            temporalize_toolset_func=temporalize_toolset_func,
            non_retryable_model_errors=non_retryable_model_errors,
            event_stream_topic=self._event_stream_topic,
            continue_as_new=continue_as_new,
            continue_as_new_after=continue_as_new_after,
            local=local,
            # pydantic-ai 2.68+'s durable capability operations: pydantic-ai's own `TemporalAgent` runs them in
            # workflow code; ours gives each its activity, named as the capability form names it.
            operations=capability_operations(agent_root_capability(wrapped)) if HAS_DURABLE_OPERATIONS else None,
        )
        self._binding = binding
        self._local_events = local.events
        self.event_stream_handler_activity = binding.event_stream_handler_activity
        self._temporal_model = binding.model
        self._toolsets = binding.toolsets
        self._temporal_activities = binding.activities
        # An `ask` that is a capability operation runs in the operation's activity only where the wrapper runs those
        # in activities (its switch); otherwise in the local activity, as before.
        self._external_event_waiter = (
            None
            if binding.external_event_wait is None
            else dataclasses.replace(
                binding.external_event_wait, operations_in_activities=lambda: patched(CAPABILITY_OPERATIONS_PATCH)
            )
        )

    # --- properties -----------------------------------------------------------------------------------------------

    @property
    def model(self) -> Model:
        """The durable model (requests go to activities inside a workflow)."""
        return self._temporal_model

    @property
    def _user_event_stream_handler(self) -> EventStreamHandler[AgentDepsT] | None:
        return self._event_stream_handler or self.wrapped.event_stream_handler

    @property
    def event_stream_handler(self) -> EventStreamHandler[AgentDepsT] | None:
        """The event stream handler; inside a workflow, one that forwards each event to the handler activity.

        With an `event_stream_topic`, inside a workflow it also publishes the events of workflow code to the topic.
        """
        handler = self._user_event_stream_handler
        if not workflow.in_workflow():
            return handler
        if self._event_stream_topic is not None:
            return self._publish_events
        if handler is None:
            return None
        return self._forward_events_to_activity

    @property
    def event_stream_topic(self) -> EventStreamTopic | None:
        """The topic the run's events are published to (`event_stream_topic=`), if any."""
        return self._event_stream_topic

    def stream_agent_events(
        self,
        client: Client,
        handle: WorkflowHandle[Any, Any],
        *,
        output_type: type[Any] | None = None,
        topic: str | EventStreamTopic | None = None,
        from_offset: int = 0,
        poll_cooldown: timedelta = timedelta(milliseconds=100),
    ) -> DurableAgentRunEvents[OutputDataT]:
        """Subscribe to the events a run of this agent publishes to its `event_stream_topic`.

        See [`stream_agent_events`][durable_temporal.stream_agent_events].

        Args:
            client: A Temporal client configured with `PydanticAIPlugin`.
            handle: The handle of the workflow running the agent.
            output_type: The type to decode the result into; defaults to the agent's `output_type`.
            topic: The topic to read; defaults to this agent's `event_stream_topic`.
            from_offset: The stream offset to start from, inclusive (`events.offset + 1` resumes).
            poll_cooldown: How long to wait between polls when no new events are ready.

        Raises:
            UserError: Neither this agent nor the call names a topic.
        """
        chosen = topic_to_read(
            topic,
            self._event_stream_topic,
            'This `TemporalAgent` has no `event_stream_topic`, so there is no stream to subscribe to: create it '
            'with `TemporalAgent(agent, event_stream_topic="agent-events")` (its workflow hosting an '
            '`AgentEventStream`), or pass `topic=` to `stream_agent_events`.',
        )
        decoded: type[Any] = output_type if output_type is not None else decodable_output_type(self.output_type)
        return stream_agent_events(
            client, handle, chosen, output_type=decoded, from_offset=from_offset, poll_cooldown=poll_cooldown
        )

    @property
    def toolsets(self) -> Sequence[AbstractToolset[AgentDepsT]]:
        """The toolsets the agent uses inside a workflow (leaf toolsets wrapped for Temporal)."""
        with self._durable_overrides(None):
            return super().toolsets

    @property
    def temporal_activities(self) -> list[Callable[..., Any]]:
        """The activities to register on the worker, in a stable order.

        The event-stream-handler activity, the model-request activities, each toolset's activities, then the local
        activity that hands a wait's token to `ask` (`external_event_ask`, pydantic-ai 2.78's external events).
        """
        return list(self._temporal_activities)

    @property
    def temporal_workflows(self) -> list[type]:
        """The child workflow types to register on the worker, read now.

        One per function toolset with a tool whose metadata selects a child workflow
        (`{'temporal': {'child_workflow': ChildWorkflowConfig(...)}}`).

        `AgentPlugin` and `PydanticAIPlugin` register them; a worker given only `temporal_activities` does not.
        """
        return self._binding.child_workflows()

    # --- workflow scope ---------------------------------------------------------------------------------------------

    async def _run_impl(self, arguments: RunArguments[AgentDepsT]) -> AgentRunResult[Any]:
        topic = self._event_stream_topic
        if topic is None or not workflow.in_workflow():
            return await super()._run_impl(arguments)
        check_hosted_stream()  # before any activity: a missing stream is a setup error
        result = await super()._run_impl(arguments)
        # Workflow code: published exactly once (a replay rebuilds the stream's log).
        publish_agent_result(topic, result)
        return result

    async def _publish_events(
        self, ctx: RunContext[AgentDepsT], stream: AsyncIterable[pai_messages.AgentStreamEvent]
    ) -> None:
        assert self._event_stream_topic is not None
        published = publish_workflow_events(self._event_stream_topic, stream)
        if self._user_event_stream_handler is not None:
            await self._forward_events_to_activity(ctx, published)
        else:
            async for _ in published:
                pass

    async def _forward_events_to_activity(
        self, ctx: RunContext[AgentDepsT], stream: AsyncIterable[pai_messages.AgentStreamEvent]
    ) -> None:
        async def send(events: list[pai_messages.AgentStreamEvent]) -> None:
            kinds = ', '.join(event.event_kind for event in events)
            summary = f'handle event: {kinds}' if len(events) == 1 else f'handle events: {kinds}'
            serialized, deps = deps_for_activity(self.run_context_type, ctx, local=self._local_events)
            if len(events) == 1 and not batched:
                params = EventStreamHandlerParams(event=events[0], serialized_run_context=serialized)
            else:
                params = EventStreamHandlerParams(event=None, serialized_run_context=serialized, events=events)
            await execute_unit(
                self.event_stream_handler_activity,
                [params, deps],
                merge_activity_config({'summary': summary}, self.activity_config),
                local=self._local_events,
            )

        if is_model_request_stream(ctx):
            # pydantic-ai 2.x hands over a model request's stream before requesting the model, 1.107 once the request
            # is done: the request (its activity) comes first either way, then the patch marker, as recorded on 1.107.
            stream = await with_first_event_pulled(stream)
        # The tool calls of this stream's node are started (and the mode read) while the stream is pulled.
        with tool_event_order(ctx, patched):
            batched = patched(EVENT_BATCHES_PATCH)
            if batched:
                await forward_event_batches(stream, send)
            else:
                async for event in stream:
                    await send([event])

    @contextmanager
    def _durable_overrides(self, model: models.Model | str | None) -> Generator[None]:
        # `tools=[]`: the agent's own tools are already in `self._toolsets`, wrapped.
        with (
            super()._override_impl(OverrideArguments(model=self._temporal_model, toolsets=self._toolsets, tools=[])),
            self._temporal_model.using_model(model),
        ):
            yield

    @contextmanager
    def _durable_scope(self, model: models.Model | str | None) -> Generator[None]:
        try:
            # Sync callbacks run inline: the workflow sandbox forbids threads.
            with (
                scoped_context_value(self._durable_run_active, True),
                self._durable_overrides(model),
                disable_threads(),
                asyncio_named_for_anyio(),
            ):
                yield
        except PydanticSerializationError as error:
            raise serialization_user_error(error, 'TemporalAgent(deps_resolver=...)') from error

    def _in_durable_run(self) -> bool:
        return self._durable_run_active.get()

    def _run_capabilities(self) -> list[Any]:
        # In a workflow, with durable capability operations: the run's dispatchers of them (pydantic-ai 2.68+).
        binding = self._binding
        if not binding.operation_activities or not workflow.in_workflow():
            return []
        operations = {key: op for key, op in binding.operations.items() if key in binding.operation_activities}
        return [
            OperationDispatch(
                operations,
                unit=binding.run_operation,
                in_durable_context=lambda: workflow.in_workflow() and patched(CAPABILITY_OPERATIONS_PATCH),
                model_request_operations=True,
                resolve_model=binding.resolve_request_model,
            )
        ]

    def _durable_container(self) -> str | None:
        return 'a Temporal workflow' if workflow.in_workflow() else None

    def _external_event_wait(self) -> ExternalEventWait | None:
        # Our durable wait (pydantic-ai 2.78's `wait_for_external_event` in a workflow): a signal ends it.
        return self._external_event_waiter

    def _resolve_model_outside_workflow(self, model: models.Model | str | None) -> models.Model:
        return self._temporal_model.resolve(model)

    def _model_argument_in_workflow(self) -> models.Model | None:
        # pydantic-ai 1.107 refuses a run without a model of the agent's own or given to `run()`, even under
        # `override(model=...)`: an agent whose models all come from `models=` is given the durable model (its
        # override already, defaulting to the first entry) explicitly. Otherwise nothing, as before.
        return self._temporal_model if self.wrapped.model is None else None

    @contextmanager
    def _override_impl(self, arguments: OverrideArguments[AgentDepsT]) -> Generator[None]:
        # Inside a workflow `model`, `toolsets`, `tools` and `native_tools` cannot be overridden: the activities are
        # fixed when the worker starts. Neither can 2.x's `workspace` and 2.78's `capabilities` (unset on 1.107).
        if workflow.in_workflow():
            refused = [
                label
                for label, value in (
                    ('model', arguments.model),
                    ('toolsets', arguments.toolsets),
                    ('tools', arguments.tools),
                    ('native_tools', arguments.native_tools),
                )
                if is_set(value)
            ]
            if refused:
                raise UserError(
                    f'`{refused[0]}` cannot be overridden inside a Temporal workflow: activities and models are fixed '
                    'when the worker starts. Set it on the agent before wrapping it in `TemporalAgent(...)` (or, for '
                    'models, register them with `models=` and pass `run(model=...)`).'
                )
            if is_set(arguments.capabilities):
                raise UserError(
                    '`capabilities` cannot be overridden inside a Temporal workflow: the toolsets a capability brings '
                    'need activities registered when the worker starts, and its hooks would run in workflow code. '
                    'Give the agent its capabilities before wrapping it in `TemporalAgent(...)`, or override them '
                    'outside the workflow.'
                )
            if is_set(arguments.workspace):
                raise UserError(
                    '`workspace` cannot be overridden inside a Temporal workflow: a workspace is a live environment '
                    'whose operations would run in workflow code, outside any activity. Give the tools that need it '
                    'their own access inside their activities, or override it outside the workflow.'
                )
        with super()._override_impl(arguments):
            yield
