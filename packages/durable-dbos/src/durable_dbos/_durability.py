"""`DBOSDurability`: the capability form, `Agent(..., capabilities=[DBOSDurability()])` in the user's own workflow.

The same machinery as `DBOSAgent` (the model's steps, the toolset wrappers, the recorded step layout), bound to an
agent instead of wrapping it: the user decorates a function with `@DBOS.workflow()` and calls `agent.run()` in it.
Steps need no registration (they are run with `DBOS.run_step_async`), so binding only names them after the agent;
the optional legacy workflows `{name}.run`/`{name}.run_sync` are the one thing registered, before `DBOS.launch()`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from contextlib import ExitStack
from contextvars import ContextVar
from dataclasses import replace
from datetime import timedelta
from typing import Any, ClassVar

from dbos import DBOS, DBOSClient
from pydantic_ai.agent import AbstractAgent, AgentRunResult, EventStreamHandler
from pydantic_ai.capabilities import WrapModelRequestHandler, WrapRunHandler
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import AgentStreamEvent, ModelResponse
from pydantic_ai.models import Model, ModelRequestContext
from pydantic_ai.tools import AgentDepsT, RunContext
from pydantic_ai.toolsets import AbstractToolset

from durable_kernel import (
    CapabilityOperation,
    CapabilityOperationOutcome,
    DurabilityCapability,
    DurableAgentRunEvents,
    EventStreamTopic,
    ExternalEventWait,
    NonRetryableModelErrors,
    OperationUnit,
    RunArguments,
    UserPrompt,
    coerce_event_stream_topic,
    dbos_capability_operation_step_name,
    dbos_event_stream_handler_step_name,
    dbos_workflow_name,
    get_event_loop,
    is_model_stream_event,
    is_permanent_model_error,
    require_durable_parallel_execution_mode,
    run_has_cancellation_token,
    run_operation_in_unit,
)

from ._child_workflows import register_child_workflows
from ._config import DBOSParallelExecutionMode, StepConfig, step_options
from ._context import in_workflow_code, step_run_context
from ._dbos_private import dbos_launched, run_after_launch
from ._durable import DurableToolsetPlan
from ._event_stream import single_event_stream
from ._external_events import DBOSEventWait
from ._live_events import (
    configured_topic,
    publish_run_result,
    publishing_stream,
    require_workflow_streams,
    run_event_stream_topic,
    stream_agent_events,
)
from ._model import DBOSModel, run_event_stream_handler
from ._other_versions import LOGGER_NAME, warn_about_other_versions_at_launch
from ._step_layout import workflow_step_record

__all__ = ('DBOSDurability',)

_logger = logging.getLogger(LOGGER_NAME)


"""Set while a workflow's request is inside `_wrap_durable_model_request` (its before-hooks run there on 2.68+)."""


class _RequestModel(DBOSModel):
    """The durable model of one request of a capability run: it never crosses a workflow's inputs, so no registry.

    (`DBOSModel` registers itself by `{prefix}:{system}:{model_name}` so that a run-time model recorded in a workflow's
    inputs can be found again; the capability swaps the model in per request, inside the run, and `models=` may hold
    two models with the same system and name.)
    """

    def _register(self) -> None:
        pass


class DBOSDurability(DurabilityCapability[AgentDepsT]):
    """Makes an agent durable on DBOS when it runs inside a DBOS workflow: its model and MCP I/O become steps.

    Attach it with `Agent(..., capabilities=[DBOSDurability()])` and call `agent.run()` (or `iter`) inside your own
    `@DBOS.workflow()`; outside a workflow the capability changes nothing. Steps (what `DBOS.list_workflow_steps`
    shows; `X` is `name=`, else the agent's name), as pydantic-ai 2.x's `DBOSDurability` names them:

    - model requests `X__model.request`, streamed ones `X__model.request_stream` (the event stream handler receives
      the live events inside that step), and the provider operations `X__model.compact_messages` and (pydantic-ai
      2.x) `X__model.cancel_suspended_response`;
    - MCP toolsets `X__mcp_server__M.get_tools`, `.get_instructions`, `.call_tool` (`M` is the toolset's id);
    - with an `event_stream_handler`: one step `X__event_stream_handler` per event of the run that is not part of a
      streamed model response (tool calls, tool results), in event order.

    Function tools run as workflow code (as on pydantic-ai 2.x): a recovered workflow calls them again. With
    `function_tool_steps=True` each call is the step `X__toolset__T.call_tool.{tool}` instead, as with `DBOSAgent`. A
    recovered workflow keeps the step layout it recorded, whatever the setting is now.

    Binding: pydantic-ai 2.x binds the capability when `Agent(...)` is constructed; 1.107 binds it on the agent's first
    run, or when `DBOSDurability.from_agent(agent)` is called (it returns the bound capability). Only
    `register_legacy_workflows` needs the binding before `DBOS.launch()`: on 1.107, call `from_agent` before launching.
    """

    engine_name = 'DBOS'
    container_name = 'a DBOS workflow'
    unit_plural = 'steps'
    _workspace_advice = (
        'Do the workspace work in a tool that runs as a step (`DBOSDurability(function_tool_steps=True)`), or outside '
        '{container}.'
    )

    def __init__(
        self,
        *,
        models: Mapping[str, Model] | None = None,
        event_stream_handler: EventStreamHandler[AgentDepsT] | None = None,
        name: str | None = None,
        model_step_config: StepConfig | None = None,
        event_stream_handler_step_config: StepConfig | None = None,
        mcp_step_config: StepConfig | None = None,
        parallel_execution_mode: DBOSParallelExecutionMode = 'parallel_ordered_events',
        register_legacy_workflows: bool = False,
        function_tool_steps: bool = False,
        tool_step_config: StepConfig | None = None,
        non_retryable_model_errors: NonRetryableModelErrors = is_permanent_model_error,
        event_stream_topic: str | EventStreamTopic | None = None,
    ) -> None:
        """Configure the DBOS steps of the agents this capability is attached to.

        Args:
            models: Other models a durable run may use, by key: pass the key (pydantic-ai 2.x) or the registered
                instance to `run(model=...)`. The agent's default model needs no entry (`'default'` is reserved).
                An unregistered model instance is refused inside a workflow; a model name string
                (`'openai:gpt-5'`) is accepted on pydantic-ai 2.x.
            event_stream_handler: Receives the run's events: a streamed model response's events live inside its
                model step, every other event in its own `X__event_stream_handler` step. Outside a workflow it sees
                the events as `ProcessEventStream` would give them.
            name: The name that prefixes every step name; defaults to the agent's name. It must be unique in the
                application and stable across deploys.
            model_step_config: Step options (retries, backoff) of model steps; DBOS's defaults when omitted.
            event_stream_handler_step_config: Step options of the `X__event_stream_handler` steps.
            mcp_step_config: Step options of MCP steps, and of capability operations' steps (as pydantic-ai 2.78's).
            parallel_execution_mode: How a model response asking for several tools runs inside a workflow:
                `'parallel_ordered_events'` (default; started together, events in call order once all finished) or
                `'sequential'`. `'parallel'` is refused: its events follow completion order, which recovery changes.
            register_legacy_workflows: Also register the workflows `X.run` and `X.run_sync` of `DBOSAgent`, so that
                workflows a `DBOSAgent` of this name started recover with this capability (they keep their recorded
                steps: no event-handler steps; a handler recorded in their inputs is called in workflow code).
            function_tool_steps: Keyword of this package: make each function-tool call of a new workflow the step
                `X__toolset__T.call_tool.{tool}`, which recovery does not repeat (pydantic-ai 2.x runs them as
                workflow code, the default here too).
            tool_step_config: Keyword of this package: the step options of function-tool steps.
            non_retryable_model_errors: Keyword of this package: the model errors that fail a model step at once
                even when `model_step_config` allows retries (see `DBOSModel`).
            event_stream_topic: Publish the run's events to the workflow's DBOS stream of this name (or
                `EventStreamTopic`), for `stream_agent_events` to read from any process sharing the database: the
                model's live events from inside its step, in batches, every other event from workflow code, then the
                terminal `AgentRunResultEvent`. Each workflow-code write is a step of its own (`DBOS.writeStream`), so
                the topic is part of the workflow's recorded layout. Outside a workflow it changes nothing.

        Raises:
            UserError: `parallel_execution_mode` is not one of the two durable modes, or the installed DBOS has no
                workflow streams.
        """
        super().__init__(models=models, event_stream_handler=event_stream_handler, name=name)
        self._model_step_config = model_step_config
        self._event_stream_handler_step_config = event_stream_handler_step_config
        self._mcp_step_config = mcp_step_config
        self._parallel_execution_mode: DBOSParallelExecutionMode = require_durable_parallel_execution_mode(
            parallel_execution_mode, engine='DBOS'
        )
        self._register_legacy_workflows = register_legacy_workflows
        self._function_tool_steps = function_tool_steps
        self._tool_step_config = tool_step_config
        self._non_retryable_model_errors: NonRetryableModelErrors = non_retryable_model_errors
        self._event_stream_topic = coerce_event_stream_topic(event_stream_topic)
        if self._event_stream_topic is not None:
            require_workflow_streams()
        self._plan: DurableToolsetPlan | None = None
        self._legacy_run_workflow: Any = None
        self._legacy_run_sync_workflow: Any = None
        self._init_run_state()
        if register_legacy_workflows:
            # On pydantic-ai 1.107 nothing binds the capability before a run unless the user calls `from_agent`: a
            # legacy workflow that is not registered at launch is never recovered, so say so once DBOS has launched.
            run_after_launch(_warn_if_never_bound, self)

    def _init_run_state(self) -> None:
        # Fresh per binding: a shallow copy would share the user's instance's variables with every other agent.
        self._legacy_handler: ContextVar[EventStreamHandler[AgentDepsT] | None] = ContextVar(
            'durable_dbos_legacy_handler', default=None
        )
        self._in_legacy_workflow: ContextVar[bool] = ContextVar('durable_dbos_in_legacy_workflow', default=False)

    @property
    def in_durable_context(self) -> bool:
        """Whether the caller is DBOS workflow code (not a step, where calls are plain)."""
        return in_workflow_code()

    def _external_event_wait(self) -> ExternalEventWait | None:
        # Our durable wait (pydantic-ai 2.78's `wait_for_external_event` in workflow code): a message ends it.
        return DBOSEventWait(self.name)

    @property
    def event_stream_topic(self) -> EventStreamTopic | None:
        """Where runs inside a workflow publish their events (`event_stream_topic=`), or `None`."""
        return self._event_stream_topic

    @property
    def legacy_run_workflow(self) -> Any:
        """The workflow `X.run` of `DBOSAgent`, with `register_legacy_workflows=True` once bound; else `None`."""
        return self._legacy_run_workflow

    @property
    def legacy_run_sync_workflow(self) -> Any:
        """The workflow `X.run_sync` of `DBOSAgent`, with `register_legacy_workflows=True` once bound; else `None`."""
        return self._legacy_run_sync_workflow

    # --- binding -------------------------------------------------------------------------------------------------

    def _bind_to_agent(self, agent: AbstractAgent[AgentDepsT, Any]) -> None:
        self._init_run_state()
        self._plan = DurableToolsetPlan(
            agent_name=self.name,
            mcp_step_config=self._mcp_step_config,
            tool_step_config=self._tool_step_config,
            function_tool_steps=self._function_tool_steps,
            dynamic_toolset_steps=True,
        )
        # The toolset errors a run would hit (an MCP toolset of an unknown class, two id-less toolsets listing one
        # tool), raised where the agent is built.
        self._plan.check(agent.toolsets)
        self._plan.child_workflows = register_child_workflows(self.name, agent.toolsets, agent)
        if self._register_legacy_workflows:
            self._register_legacy(agent)

    def _register_legacy(self, agent: AbstractAgent[AgentDepsT, Any]) -> None:
        if dbos_launched():
            # Registered all the same: new legacy runs work, but DBOS recovered this process's pending workflows at
            # launch, without these. Not an error: pydantic-ai 2.x lets an agent be built after launch too.
            _logger.warning(
                '`DBOSDurability(register_legacy_workflows=True)` of the agent %r was bound after `DBOS.launch()`: the '
                '`DBOSAgent` workflows %r and %r it registers now were not there when DBOS recovered pending '
                'workflows, so this process does not resume theirs. On pydantic-ai 1.107 the capability binds on its '
                'first run: call `DBOSDurability.from_agent(agent)` before `DBOS.launch()` (pydantic-ai 2.x binds at '
                '`Agent(...)`).',
                self.name,
                dbos_workflow_name(self.name, 'run'),
                dbos_workflow_name(self.name, 'run_sync'),
            )
        names = [dbos_workflow_name(self.name, 'run'), dbos_workflow_name(self.name, 'run_sync')]

        # Workflow bodies as `DBOSAgent` records them: the run-time inputs it recorded, given back to the agent's run.
        async def run_workflow(user_prompt: UserPrompt = None, **inputs: Any) -> AgentRunResult[Any]:
            return await self._run_legacy(agent, user_prompt, inputs)

        def run_sync_workflow(user_prompt: UserPrompt = None, **inputs: Any) -> AgentRunResult[Any]:
            # Like `DBOSAgent`: the sync workflow runs the async one as its child.
            return get_event_loop().run_until_complete(self._legacy_run_workflow(user_prompt, **inputs))

        self._legacy_run_workflow = DBOS.workflow(name=names[0])(run_workflow)
        self._legacy_run_sync_workflow = DBOS.workflow(name=names[1])(run_sync_workflow)
        warn_about_other_versions_at_launch(self.name, names)

    async def _run_legacy(
        self, agent: AbstractAgent[AgentDepsT, Any], user_prompt: UserPrompt, inputs: dict[str, Any]
    ) -> AgentRunResult[Any]:
        handler = inputs.pop('event_stream_handler', None)
        legacy = self._in_legacy_workflow.set(True)
        recorded = self._legacy_handler.set(handler)
        try:
            # Through the kernel's run arguments, as the wrapper's workflow: a workflow that another pydantic-ai line
            # recorded (2.x's keywords at their defaults, recovered on 1.107) gives the installed `run` what it takes.
            arguments = RunArguments.from_kwargs(user_prompt, inputs)
            return await agent.run(user_prompt, **arguments.run_kwargs())
        finally:
            self._legacy_handler.reset(recorded)
            self._in_legacy_workflow.reset(legacy)

    def _effective_event_stream_handler(self) -> EventStreamHandler[AgentDepsT] | None:
        # A `DBOSAgent` workflow carries its run's handler in its inputs, and it wins over the agent's, as it did there.
        return self._legacy_handler.get() or self._event_stream_handler

    def _run_topic(self) -> EventStreamTopic | None:
        # A `DBOSAgent` workflow recovered through the legacy workflows keeps the steps it recorded: no stream writes.
        if self._in_legacy_workflow.get():
            return None
        return self._event_stream_topic

    # --- live events ---------------------------------------------------------------------------------------------

    def stream_agent_events(
        self,
        workflow_id: str,
        *,
        topic: str | EventStreamTopic | None = None,
        output_type: Any = None,
        from_offset: int = 0,
        polling_interval: timedelta | None = None,
        client: DBOSClient | None = None,
    ) -> DurableAgentRunEvents[Any]:
        """The live events of the run of this capability's agent in the workflow `workflow_id`.

        See [`stream_agent_events`][durable_dbos.stream_agent_events]; this fills in the topic (`event_stream_topic=`)
        and, on a capability bound to one agent, the agent's output type.

        Args:
            workflow_id: The workflow that runs the agent.
            topic: Another topic than the capability's.
            output_type: The type to decode the result's output as; defaults to the agent's output type when the
                capability is bound to one agent, else JSON data.
            from_offset: `0`, or `events.offset + 1` of an earlier consumer.
            polling_interval: How often to look for new events where DBOS cannot be notified of them.
            client: Read through this `DBOSClient` instead of the launched DBOS of this process.

        Raises:
            UserError: No topic was configured and none is passed.
        """
        if output_type is None:
            output_type = self._agent_output_type()
        return stream_agent_events(
            workflow_id,
            configured_topic(topic, self._event_stream_topic, owner='This `DBOSDurability`'),
            output_type=output_type,
            from_offset=from_offset,
            polling_interval=polling_interval,
            client=client,
        )

    def _agent_output_type(self) -> Any:
        agents = [self._agent] if self._agent is not None else [ref() for ref, _ in self._bindings.values()]
        output_types = {
            id(getattr(agent, 'output_type', Any)): getattr(agent, 'output_type', Any) for agent in agents if agent
        }
        # Bound to several agents with different outputs (or to none yet): JSON data, unless the caller says.
        return next(iter(output_types.values())) if len(output_types) == 1 else Any

    # --- run hooks -----------------------------------------------------------------------------------------------

    async def before_run(self, ctx: RunContext[AgentDepsT]) -> None:
        """Inside a workflow: refuse a `cancellation_token=` (pydantic-ai 2.x) with a `UserError` that says why.

        Outside a workflow the capability changes nothing, so a token works there as in any run.
        """
        if self.in_durable_context and run_has_cancellation_token(ctx):
            raise UserError(
                '`cancellation_token` cannot be used with DBOS durable execution inside a workflow: the token is a '
                'live object of this process, so a workflow recovered after a crash (or in another process) would '
                'run without it and could no longer be cancelled by it. Cancel the workflow instead: '
                '`DBOS.cancel_workflow(workflow_id)` (choose the ID with `SetWorkflowID`).'
            )
        await super().before_run(ctx)

    async def _wrap_durable_run(self, ctx: RunContext[AgentDepsT], *, handler: WrapRunHandler) -> AgentRunResult[Any]:
        """Inside a workflow: the durable tool-call mode, and the workflow's recorded step layout for tool calls."""
        topic = self._run_topic()
        with ExitStack() as stack:
            stack.enter_context(AbstractAgent.parallel_tool_call_execution_mode(self._parallel_execution_mode))
            stack.enter_context(workflow_step_record())
            stack.enter_context(run_event_stream_handler(self._effective_event_stream_handler()))
            stack.enter_context(run_event_stream_topic(topic))
            result = await handler()
            if topic is not None:
                # Not closed: the workflow may run the agent again on the same topic, and a consumer stops at this
                # event; a failed run publishes nothing and the reader ends with the workflow.
                await publish_run_result(topic, result, close=False)
            return result

    @property
    def has_wrap_run_event_stream(self) -> bool:
        """With a topic inside a workflow, every node's events are streamed (to be published) as with a handler."""
        return super().has_wrap_run_event_stream or (self._run_topic() is not None and self.in_durable_context)

    async def wrap_run_event_stream(
        self, ctx: RunContext[AgentDepsT], *, stream: AsyncIterable[AgentStreamEvent]
    ) -> AsyncIterable[AgentStreamEvent]:
        """Inside a workflow with a topic: publish each event before the handler (if any) gets it."""
        topic = self._run_topic()
        if topic is not None and self.in_durable_context:
            stream = publishing_stream(topic, stream)
        async for event in super().wrap_run_event_stream(ctx, stream=stream):
            yield event

    def get_wrapper_toolset(self, toolset: AbstractToolset[AgentDepsT]) -> AbstractToolset[AgentDepsT] | None:
        """Inside a workflow: the run's toolset with MCP toolsets (and tool calls, if asked) as DBOS steps."""
        if not self.in_durable_context:
            return None
        plan = self._require_plan()
        if self._in_legacy_workflow.get():
            # A `DBOSAgent` workflow recorded its dynamic toolsets' tools as workflow code (or, ours, as tool steps).
            plan = replace(plan, dynamic_toolset_steps=False)
        return plan.wrap(toolset)

    async def _wrap_durable_model_request(
        self,
        ctx: RunContext[AgentDepsT],
        *,
        request_context: ModelRequestContext,
        handler: WrapModelRequestHandler,
    ) -> ModelResponse:
        """Inside a workflow: the request (streamed or not) runs in a model step of this agent."""
        if isinstance(request_context.model, DBOSModel):
            return await handler(request_context)
        self._route_to_step(ctx, request_context)
        with self._routing_request(None):
            return await handler(request_context)

    def _route_to_step(self, ctx: RunContext[AgentDepsT], request_context: ModelRequestContext) -> None:
        model = request_context.model
        # Refuses a model instance that is neither the agent's default nor registered with `models=` (a model selected
        # by a string is selected again by the same string when the workflow is recovered).
        self.request_model_key(ctx, request_context)
        # The request's own model (with any instrumentation around it) runs inside the step: steps run in this process.
        request_context.model = _RequestModel(
            model,
            step_name_prefix=self.name,
            step_config=self._model_step_config,
            event_stream_handler=self._effective_event_stream_handler(),
            non_retryable_model_errors=self._non_retryable_model_errors,
        )

    def _route_request_model(
        self, ctx: RunContext[AgentDepsT], request_context: ModelRequestContext, state: Any, *, attempt: bool
    ) -> None:
        """A model a hook or the attempt loop set after the wrap runs in a model step too (pydantic-ai 2.68+)."""
        if not isinstance(request_context.model, DBOSModel):
            self._route_to_step(ctx, request_context)

    def _durable_event_stream(
        self,
        ctx: RunContext[AgentDepsT],
        stream: AsyncIterable[AgentStreamEvent],
        handler: EventStreamHandler[AgentDepsT],
    ) -> AsyncIterable[AgentStreamEvent]:
        if self._in_legacy_workflow.get():
            return _each_event_in_workflow_code(ctx, stream, handler)
        return self._each_event_in_a_step(ctx, stream, handler)

    async def _each_event_in_a_step(
        self,
        ctx: RunContext[AgentDepsT],
        stream: AsyncIterable[AgentStreamEvent],
        handler: EventStreamHandler[AgentDepsT],
    ) -> AsyncIterator[AgentStreamEvent]:
        options = step_options(dbos_event_stream_handler_step_name(self.name), self._event_stream_handler_step_config)
        async for event in stream:
            # A streamed response's events reached the handler live, inside the model step.
            if not is_model_stream_event(event):

                async def handle_event(event: AgentStreamEvent = event) -> None:
                    with step_run_context(ctx) as guarded:
                        await handler(guarded, single_event_stream(event))

                await DBOS.run_step_async(options, handle_event)
            yield event

    # Operations on a request's `ModelRequestContext` (a durable `before_model_request`, ...) run in their step too,
    # the context crossing as its projection, as pydantic-ai 2.78's capability runs them.
    _model_request_operations: ClassVar[bool] = True

    @property
    def _operation_unit(self) -> OperationUnit | None:
        # A durable capability operation called in workflow code runs in the step `{name}__capability__{id}.{op}`
        # (pydantic-ai 2.78's name), with `mcp_step_config`'s options; a recovered workflow takes its recorded outcome.
        if self._in_legacy_workflow.get():
            return None  # a `DBOSAgent` workflow recorded its run without such steps: it replays as it ran
        return self._run_operation_step

    async def _run_operation_step(
        self, operation: CapabilityOperation, ctx: RunContext[Any], arguments: dict[str, Any]
    ) -> CapabilityOperationOutcome:
        name = dbos_capability_operation_step_name(self.name, operation.capability_id, operation.name)

        async def run_operation() -> CapabilityOperationOutcome:
            with step_run_context(ctx) as guarded:
                # An operation on a request context gets it rebuilt around the model its projection names (the step
                # runs in the run's process: the run context keeps the run's own model).
                projection = operation.request_projection(arguments)
                model = await self.model_for_operation(guarded, projection.model_id) if projection else None
                return await run_operation_in_unit(operation, guarded, arguments, model=model, model_key=self.model_key)

        # `mcp_step_config`'s options, as pydantic-ai 2.78 gives a capability operation's step (its config for that role).
        return await DBOS.run_step_async(step_options(name, self._mcp_step_config), run_operation)

    def _require_plan(self) -> DurableToolsetPlan:
        if self._plan is None:  # pragma: no cover - hooks run on the bound copy
            raise UserError('`DBOSDurability` was used before it was bound to an agent.')
        return self._plan


async def _each_event_in_workflow_code(
    ctx: RunContext[Any], stream: AsyncIterable[AgentStreamEvent], handler: EventStreamHandler[Any]
) -> AsyncIterator[AgentStreamEvent]:
    # How `DBOSAgent` recorded its runs (`handle_each_event`): the handler called once per event, in workflow code.
    async for event in stream:
        await handler(ctx, single_event_stream(event))
        yield event


def _warn_if_never_bound(capability: DBOSDurability[Any]) -> None:
    if capability._bindings:  # pyright: ignore[reportPrivateUsage]
        return
    named = f' (name={capability.name!r})' if capability.name else ''
    _logger.warning(
        'A `DBOSDurability(register_legacy_workflows=True)`%s was not bound to an agent when DBOS launched, so the '
        '`DBOSAgent` workflows `{name}.run`/`{name}.run_sync` were not registered and will not be recovered. On '
        'pydantic-ai 1.107 call `DBOSDurability.from_agent(agent)` before `DBOS.launch()`.',
        named,
    )
