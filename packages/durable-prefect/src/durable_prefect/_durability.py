"""[`PrefectDurability`][durable_prefect.PrefectDurability]: the capability form, `Agent(..., capabilities=[...])`.

The user writes the `@flow` and calls `agent.run(...)` in it; nothing is registered. Inside a flow run the capability
swaps in the same machinery as [`PrefectAgent`][durable_prefect.PrefectAgent] (its `PrefectModel`, toolset wrappers,
event tasks, task configs and cache keys), so both forms make the same tasks with the same keys; only the names of
three kinds of task and the event dispatch follow pydantic-ai 2.x's capability form (see `docs/prefect.md`).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterable, Mapping
from datetime import timedelta
from typing import Any, ClassVar
from uuid import UUID

from prefect.context import FlowRunContext, TaskRunContext
from pydantic_ai.agent import AbstractAgent, AgentRunResult, EventStreamHandler
from pydantic_ai.capabilities import WrapModelRequestHandler, WrapRunHandler
from pydantic_ai.messages import AgentStreamEvent, ModelResponse
from pydantic_ai.models import Model, ModelRequestContext, ModelRequestParameters, StreamedResponse
from pydantic_ai.tools import AgentDepsT, RunContext
from pydantic_ai.toolsets import AbstractToolset

from durable_kernel import (
    DurabilityCapability,
    DurableAgentRunEvents,
    EventStreamTopic,
    NonRetryableModelErrors,
    OperationUnit,
    PrefectTaskKind,
    coerce_event_stream_topic,
    completed_streamed_response,
    is_model_stream_event,
    is_permanent_model_error,
    ordered_tool_call_events,
)

from ._capability_operations import run_operation_task
from ._event_handler import event_task
from ._key_text import message_key_cache
from ._live_events import (
    DEFAULT_POLLING_INTERVAL,
    current_channel,
    publish_run_result,
    publishing_stream,
    run_channel,
    stream_agent_events,
    topic_to_read,
)
from ._model import PrefectModel
from ._prefectify import prefectify_toolset_for_capability
from ._task_config import TaskConfig, merge_task_config

__all__ = ('PrefectDurability',)


class _CapabilityModel(PrefectModel):
    """The `PrefectModel` of the capability form, with two rules of pydantic-ai 2.x's capability form.

    The cancellation task is named `Cancel Suspended Response: {model}`, and the flow sees a streamed response's parts
    as events (each part in one event): `run_stream` and the run's other capabilities get the recorded text, while the
    event stream handler, which saw the live events inside the task, is not given them again.
    """

    _cancel_task_kind: ClassVar[PrefectTaskKind] = 'cancel_suspended_response'

    def _recorded_stream(
        self, response: ModelResponse, model_request_parameters: ModelRequestParameters, handler: object
    ) -> StreamedResponse:
        return completed_streamed_response(response, model_request_parameters, replay_parts=True)


"""Set while a flow run's request is inside `_wrap_durable_model_request` (its before-hooks run there on 2.68+)."""


class PrefectDurability(DurabilityCapability[AgentDepsT]):
    """Makes an agent durable on Prefect as a capability: `Agent(..., capabilities=[PrefectDurability()])`.

    Call `agent.run(...)` inside your own `@flow`: in a flow run, each model request is a
    `Model Request: {model}` (or `Model Request (Streaming): {model}`) task, each tool call a `Call Tool: {tool}`
    task, MCP I/O `Get MCP Tools: {id}` and `Call MCP Tool: {tool}` tasks, and each event for the
    `event_stream_handler` other than the model's own stream a `Handle Stream Event` task. Their results are
    persisted under cache keys computed by value (as [`PrefectAgent`][durable_prefect.PrefectAgent]'s are), so a
    retried or resumed flow run reuses the tasks it completed. Outside a flow the capability changes nothing.

    The agent needs a name (`Agent(name=...)` or `name=`) and a default model; another model instance used in a flow
    run must be registered with `models=` (select it by its key or instance), and on pydantic-ai 2.x a model may also
    be selected by a string (`run(model='openai:gpt-5')`). Per-tool task configs go in the
    tool's metadata: `metadata={'prefect': TaskConfig(...)}`, or `{'prefect': False}` to run it without a task.
    """

    engine_name = 'Prefect'
    container_name = 'a Prefect flow'
    unit_plural = 'tasks'
    _workspace_advice = 'Do the workspace work in a tool (each tool call is a task), or outside {container}.'

    def __init__(
        self,
        *,
        models: Mapping[str, Model] | None = None,
        event_stream_handler: EventStreamHandler[AgentDepsT] | None = None,
        name: str | None = None,
        event_stream_handler_task_config: TaskConfig | None = None,
        model_task_config: TaskConfig | None = None,
        mcp_task_config: TaskConfig | None = None,
        tool_task_config: TaskConfig | None = None,
        tool_task_config_by_name: Mapping[str, TaskConfig | None] | None = None,
        non_retryable_model_errors: NonRetryableModelErrors = is_permanent_model_error,
        event_stream_topic: str | EventStreamTopic | None = None,
    ) -> None:
        """Create the capability; it binds to the agent it is given to (its name, model and toolsets).

        Args:
            models: Other models a flow run may use, by key: pass the key (pydantic-ai 2.x) or the registered instance
                to `run(model=...)`; `'default'` is reserved. A model name string (`'openai:gpt-5'`) is accepted on
                pydantic-ai 2.x; an unregistered model instance is refused in a flow run.
            event_stream_handler: Receives the run's events: the model's streamed events live inside the model
                request task, every other event in a `Handle Stream Event` task of its own.
            name: The agent's unique name in Prefect; defaults to the agent's `name`.
            event_stream_handler_task_config: Task config of the `Handle Stream Event` tasks.
            model_task_config: Task config of model requests (and compaction, cancellation).
            mcp_task_config: Task config of MCP tool listing and MCP tool calls.
            tool_task_config: Task config of every tool call; a tool's `metadata={'prefect': TaskConfig(...)}` is
                merged over it, `{'prefect': False}` runs the tool without a task.
            tool_task_config_by_name: Per-tool task configs by tool name, merged over `tool_task_config` and winning
                over tool metadata; `None` runs that tool without a task (as with `PrefectAgent`).
            non_retryable_model_errors: The model errors that fail a model task at once even when
                `model_task_config` allows retries: exception classes, or a function `error -> bool` (the default,
                [`is_permanent_model_error`][durable_kernel.is_permanent_model_error]; `()` retries every error).
            event_stream_topic: Publish the events of every run in a flow to this topic, for
                [`stream_agent_events`][durable_prefect.stream_agent_events] to read from another process while the
                run executes: the model's streamed events from inside the model request task, in batches, the other
                events and the result from the flow (see "Live events" in the Prefect docs). Outside a flow nothing
                is published.

        Every config is merged over [`DEFAULT_TASK_CONFIG`][durable_prefect.DEFAULT_TASK_CONFIG]; the caller's dicts
        are never modified.
        """
        super().__init__(models=models, event_stream_handler=event_stream_handler, name=name)
        self._model_task_config = merge_task_config(model_task_config)
        self._mcp_task_config = merge_task_config(mcp_task_config)
        self._tool_task_config = merge_task_config(tool_task_config)
        self._tool_task_config_by_name: dict[str, TaskConfig | None] = dict(tool_task_config_by_name or {})
        self._event_task_config = merge_task_config(event_stream_handler_task_config)
        self._non_retryable_model_errors = non_retryable_model_errors
        self._durable_models: dict[str | None, PrefectModel] = {}
        self._send_event = event_task(self._event_task_config)
        self.event_stream_topic: EventStreamTopic | None = coerce_event_stream_topic(event_stream_topic)

    @property
    def in_durable_context(self) -> bool:
        """Whether the code runs in a Prefect flow run."""
        return FlowRunContext.get() is not None

    # Operations on a request's `ModelRequestContext` (a durable `before_model_request`, ...) run in their task too,
    # the context crossing as its projection, as pydantic-ai 2.78's capability runs them.
    _model_request_operations: ClassVar[bool] = True

    @property
    def _operation_unit(self) -> OperationUnit | None:
        # A durable capability operation called in flow code runs in the task `Capability: {id}.{operation}`
        # (pydantic-ai 2.78's name); a retried or resumed flow run takes its cached outcome.
        return functools.partial(run_operation_task, models=self)

    def _in_container_code(self) -> bool:
        # Flow code, not a task inside the flow (a tool's task): there the operation runs where it is called.
        return FlowRunContext.get() is not None and TaskRunContext.get() is None

    def _bind_to_agent(self, agent: AbstractAgent[AgentDepsT, Any]) -> None:
        # Per binding (a shallow copy would share the user's instance's dict): the durable model of each model key.
        self._durable_models = {}

    def _durable_model(self, key: str | None) -> PrefectModel:
        """The `PrefectModel` around the model of `key`, built once per binding (it holds the model's tasks)."""
        found = self._durable_models.get(key)
        if found is None:
            found = self._durable_models[key] = self._task_model(self.model_for_key(key))
        return found

    def _task_model(self, model: Model) -> PrefectModel:
        return _CapabilityModel(
            model,
            task_config=self._model_task_config,
            event_stream_handler=self.event_stream_handler,
            non_retryable_model_errors=self._non_retryable_model_errors,
        )

    def _prefectify(self, toolset: AbstractToolset[AgentDepsT]) -> AbstractToolset[AgentDepsT]:
        return prefectify_toolset_for_capability(
            toolset, self._mcp_task_config, self._tool_task_config, self._tool_task_config_by_name
        )

    # --- run hooks: each passes through outside a flow run ---------------------------------------------------------

    async def _wrap_durable_run(self, ctx: RunContext[AgentDepsT], *, handler: WrapRunHandler) -> AgentRunResult[Any]:
        """In a flow run: parallel tool calls report their events in call order, and the run's keys share a cache.

        The order makes the run dispatch the same events in the same order on every attempt of the flow run, which is
        what lets a retried attempt find each event's task again (see `_durable_event_stream`).
        """
        with ordered_tool_call_events(), message_key_cache(), run_channel(self.event_stream_topic):
            result = await handler()
            channel = current_channel()
            if channel is not None:
                await publish_run_result(channel, result)
            return result

    @property
    def has_wrap_run_event_stream(self) -> bool:
        """With a topic in a flow run, the run's events are always wrapped (pydantic-ai then streams every node)."""
        return (self.event_stream_topic is not None and self.in_durable_context) or super().has_wrap_run_event_stream

    async def wrap_run_event_stream(
        self, ctx: RunContext[AgentDepsT], *, stream: AsyncIterable[AgentStreamEvent]
    ) -> AsyncIterable[AgentStreamEvent]:
        """In a flow run with a topic: the events the model task did not publish are published from the flow first."""
        channel = current_channel() if self.in_durable_context else None
        if channel is not None:
            stream = publishing_stream(channel, stream)
        async for event in super().wrap_run_event_stream(ctx, stream=stream):
            yield event

    def stream_agent_events(
        self,
        flow_run_id: UUID | str,
        *,
        topic: str | EventStreamTopic | None = None,
        output_type: Any = Any,
        from_offset: int = 0,
        polling_interval: timedelta = DEFAULT_POLLING_INTERVAL,
    ) -> DurableAgentRunEvents[Any]:
        """The live events of the agent run in your flow run `flow_run_id`, on this capability's topic.

        See [`stream_agent_events`][durable_prefect.stream_agent_events].

        Args:
            flow_run_id: The flow run that ran the agent (`prefect.runtime.flow_run.id` inside it).
            topic: Another topic to read than the capability's own.
            output_type: The agent's output type, to decode the result's output; `Any` gives it as JSON data.
            from_offset: `0`, or `events.offset + 1` of an earlier consumer to continue after its last event.
            polling_interval: How often to ask the Prefect API for new events.

        Raises:
            UserError: The capability has no `event_stream_topic` and no `topic` is given.
        """
        return stream_agent_events(
            flow_run_id,
            topic_to_read(self.event_stream_topic, topic, 'This PrefectDurability'),
            output_type=output_type,
            from_offset=from_offset,
            polling_interval=polling_interval,
        )

    def get_wrapper_toolset(self, toolset: AbstractToolset[AgentDepsT]) -> AbstractToolset[AgentDepsT] | None:
        """In a flow run: every leaf toolset wrapped so that its tool calls (and MCP I/O) are Prefect tasks.

        Raises:
            UserError: A leaf toolset that executes tools and cannot be wrapped (its calls would run outside tasks).
        """
        if not self.in_durable_context:
            return None
        return toolset.visit_and_replace(self._prefectify)

    async def _wrap_durable_model_request(
        self,
        ctx: RunContext[AgentDepsT],
        *,
        request_context: ModelRequestContext,
        handler: WrapModelRequestHandler,
    ) -> ModelResponse:
        """In a flow run: the request goes to the `PrefectModel` of its model (the default or a `models=` entry).

        Raises:
            UserError: The model is neither the agent's default nor registered with `models=`.
        """
        self._route_to_task(ctx, request_context)
        with self._routing_request(None):
            return await handler(request_context)

    def _route_to_task(self, ctx: RunContext[AgentDepsT], request_context: ModelRequestContext) -> None:
        key = self.request_model_key(ctx, request_context)
        if key is None or key in self.models:
            request_context.model = self._durable_model(key)
        else:
            # Selected by a string that is no key (a provider model name, an alias another capability resolves,
            # possibly per deps): the run's own instance, in a task keyed by its value like any other.
            request_context.model = self._task_model(request_context.model)

    def _route_request_model(
        self, ctx: RunContext[AgentDepsT], request_context: ModelRequestContext, state: Any, *, attempt: bool
    ) -> None:
        """A model a hook or the attempt loop set after the wrap runs in a model task too (pydantic-ai 2.68+)."""
        if not isinstance(request_context.model, PrefectModel):
            self._route_to_task(ctx, request_context)

    async def _durable_event_stream(
        self,
        ctx: RunContext[AgentDepsT],
        stream: AsyncIterable[AgentStreamEvent],
        handler: EventStreamHandler[AgentDepsT],
    ) -> AsyncIterable[AgentStreamEvent]:
        # The model's streamed events reached the handler live, inside the model request task; every other event is
        # handled in a task of its own. Its key holds the event's position among the events this agent dispatched in
        # the flow run: two identical events both run, and a retried attempt, which dispatches the same events in
        # the same order, finds each completed one again (Prefect rebuilds `task_run_dynamic_keys` per attempt).
        flow_context = FlowRunContext.get()
        sequence_key = f'durable_prefect:event_sequence:{self.name}'
        async for event in stream:
            if flow_context is not None and not is_model_stream_event(event):
                position = flow_context.task_run_dynamic_keys.get(sequence_key, 0)
                assert isinstance(position, int)
                flow_context.task_run_dynamic_keys[sequence_key] = position + 1
                await self._send_event(handler, ctx, event, position)
            yield event
