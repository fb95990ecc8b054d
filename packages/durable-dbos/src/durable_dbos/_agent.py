"""`DBOSAgent`: an agent whose runs are DBOS workflows and whose I/O is DBOS steps."""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from dbos import DBOS, DBOSClient, DBOSConfiguredInstance
from pydantic_ai.agent import AbstractAgent, AgentRunResult, EventStreamHandler
from pydantic_ai.exceptions import UserError
from pydantic_ai.models import Model
from pydantic_ai.output import OutputDataT
from pydantic_ai.tools import AgentDepsT
from pydantic_ai.toolsets import AbstractToolset

from durable_kernel import (
    DepsResolver,
    DurableAgentRunEvents,
    EventStreamTopic,
    ExternalEventWait,
    NonRetryableModelErrors,
    RunArguments,
    UserPrompt,
    coerce_event_stream_topic,
    dbos_workflow_name,
    get_event_loop,
    is_permanent_model_error,
    ordered_tool_call_events,
    reference_deps,
    require_agent_name,
    require_durable_parallel_execution_mode,
    require_wrapped_model,
    resolve_deps,
)

from ._child_workflows import register_child_workflows
from ._config import DBOSParallelExecutionMode, StepConfig
from ._context import in_workflow_code
from ._durable import DurableToolsetPlan, DurableToolsetsCapability, check_picklable_inputs
from ._entry_points import DBOSEntryPoints
from ._event_stream import handle_each_event
from ._external_events import DBOSEventWait
from ._live_events import (
    configured_topic,
    current_event_stream_topic,
    publish_run_result,
    require_workflow_streams,
    run_event_stream_topic,
    stream_agent_events,
)
from ._model import DBOSModel, run_event_stream_handler
from ._other_versions import warn_about_other_versions_at_launch
from ._run_keywords import refuse_unrecordable_keywords, without_refused_keywords

__all__ = ('DBOSAgent',)


# Registered under a qualified name: DBOS keys classes by name, and the reference's class is also `DBOSAgent`, so
# both can live in one process (benchmarks, compatibility tests, gradual migration).
@DBOS.dbos_class('durable_dbos.DBOSAgent')
class DBOSAgent(DBOSEntryPoints[AgentDepsT, OutputDataT], DBOSConfiguredInstance):
    """An agent whose `run`/`run_sync` are DBOS workflows and whose model requests, tool calls and MCP I/O are steps.

    Durable units (step names are what `DBOS.list_workflow_steps` shows):

    - workflows `{name}.run` and `{name}.run_sync` (a new workflow outside a workflow, a child workflow inside one;
      `run_sync` runs `run` as its child, like the reference);
    - model requests: `{name}__model.request`, streamed ones `{name}__model.request_stream` (the event stream handler
      consumes the live stream inside the step); the model's other provider operations `{name}__model.compact_messages`
      and (pydantic-ai 2.x) `{name}__model.cancel_suspended_response`;
    - MCP servers/toolsets: `{name}__mcp_server__{id}.get_tools`, `.get_instructions`, `.call_tool`;
    - function-tool calls (and calls of any other leaf toolset): `{name}__toolset__{id}.call_tool.{tool}` — the
      agent's own `tools=` live in the toolset with id `<agent>`; a toolset without an id gives
      `{name}__toolset.call_tool.{tool}`.

    The event stream handler sees a streamed model request's live events inside its step. The agent's other events
    (tool calls and results) are read in workflow code and handed to the handler one per call, so the tool calls
    always run in workflow code, as steps: a handler decorated with `@DBOS.step()` records one step per event under
    its own name (as with `pydantic_ai.durable_exec.dbos`), a plain handler runs as workflow code.

    Construct every `DBOSAgent` before `DBOS.launch()` in every process that may recover its workflows.
    """

    _units_named = 'its DBOS workflows and steps, which DBOS records'
    _unit_plural = 'steps'
    _workspace_advice = (
        'Do the workspace work in a tool (each tool call of a `DBOSAgent` is a step), or outside {container}.'
    )

    def __init__(
        self,
        wrapped: AbstractAgent[AgentDepsT, OutputDataT],
        *,
        name: str | None = None,
        event_stream_handler: EventStreamHandler[AgentDepsT] | None = None,
        mcp_step_config: StepConfig | None = None,
        model_step_config: StepConfig | None = None,
        parallel_execution_mode: DBOSParallelExecutionMode = 'parallel_ordered_events',
        tool_step_config: StepConfig | None = None,
        tool_step_config_by_name: Mapping[str, StepConfig | None] | None = None,
        function_tool_steps: bool = True,
        non_retryable_model_errors: NonRetryableModelErrors = is_permanent_model_error,
        deps_resolver: DepsResolver[AgentDepsT, Any] | None = None,
        event_stream_topic: str | EventStreamTopic | None = None,
    ):
        """Make `wrapped` durable on DBOS: its runs become workflows, its model, tool and MCP I/O become steps.

        The wrapped agent itself is not changed: used directly, it still runs without DBOS.

        Args:
            wrapped: The agent to make durable.
            name: The DBOS configured-instance name, which prefixes every workflow and step name; defaults to
                `wrapped.name`. It must be unique in the application and stable across deploys.
            event_stream_handler: A handler for the run's events that replaces the wrapped agent's own.
            mcp_step_config: Step options (retries, backoff) for the steps of MCP servers and toolsets; DBOS's
                defaults when omitted.
            model_step_config: Step options for model-request steps; DBOS's defaults when omitted.
            parallel_execution_mode: How a model response asking for several tools is executed:
                `'parallel_ordered_events'` (default) starts the calls together and reports their events in call
                order once all have finished; `'sequential'` runs them one after another.
            tool_step_config: The DBOS step config of function-tool call steps (DBOS's defaults if not given).
            tool_step_config_by_name: Per-tool step configs, merged over `tool_step_config`; `None` for a tool runs
                it as plain workflow code instead of a step (for tools without side effects).
            function_tool_steps: Whether function-tool calls of new workflows are steps (`False`: workflow code, as
                in `pydantic_ai.durable_exec.dbos`, which a crash runs again). A recovered workflow keeps the layout it
                recorded whatever this says: one started by the reference (or with `False`) continues without tool
                steps, one recorded with them continues with them.
            non_retryable_model_errors: The model errors that fail a model step at once even when
                `model_step_config` allows retries: exception classes, or a function `error -> bool`. The default,
                [`is_permanent_model_error`][durable_kernel.is_permanent_model_error], covers a 4xx response other
                than 408, 409 and 429, a content filter and a `UserError`; `()` retries every error as
                `model_step_config` says.
            deps_resolver: Records `deps` in the workflow's inputs as a small reference (`reference(deps)`) and
                rebuilds them when the workflow runs, and again when it is recovered (`resolve(reference)`), so that
                clients and credentials never enter DBOS's system database. Steps run in the workflow's process and
                see the live deps. See [`DepsResolver`][durable_kernel.DepsResolver].
            event_stream_topic: Publish the events of each `run` workflow to its DBOS stream of this name (or
                `EventStreamTopic`), for [`stream_agent_events`][durable_dbos.DBOSAgent.stream_agent_events] to read
                from any process sharing the database: the model's live events from inside its step, in batches,
                every other event from workflow code, then the terminal `AgentRunResultEvent`, after which the
                stream is closed. Each workflow-code write is a step of its own (`DBOS.writeStream`), so the topic
                is part of the workflow's recorded layout.

        Raises:
            UserError: The agent has no name or no model, another `DBOSAgent` has the name, or `event_stream_topic`
                is given and the installed DBOS has no workflow streams.
        """
        super().__init__(wrapped)
        self._name = require_agent_name(name or wrapped.name, engine='DBOS')
        self._parallel_execution_mode: DBOSParallelExecutionMode = require_durable_parallel_execution_mode(
            parallel_execution_mode, engine='DBOS'
        )
        self._event_stream_handler = event_stream_handler
        self._event_stream_topic = coerce_event_stream_topic(event_stream_topic)
        if self._event_stream_topic is not None:
            require_workflow_streams()
        self.deps_resolver = deps_resolver
        model = require_wrapped_model(wrapped, engine='DBOS', wrapper='DBOSAgent')
        self._plan = DurableToolsetPlan(
            agent_name=self._name,
            mcp_step_config=mcp_step_config,
            tool_step_config=tool_step_config,
            tool_step_config_by_name=dict(tool_step_config_by_name or {}),
            function_tool_steps=function_tool_steps,
        )
        self._plan.check(wrapped.toolsets)
        # Before `DBOS.launch()`, which recovers only the workflows registered by then.
        self._plan.child_workflows = register_child_workflows(self._name, wrapped.toolsets, wrapped)
        # Before the model, whose registry key holds the agent's name: a second agent of that name is told so.
        try:
            DBOSConfiguredInstance.__init__(self, self._name)
        except Exception as error:
            if 'Duplicate instance registration' not in str(error):
                raise
            raise UserError(
                f'Another `DBOSAgent` named {self._name!r} already exists in this process. DBOS names workflows and '
                'steps after the agent, so names must be unique: pass a different `name=`.'
            ) from error
        self._model = DBOSModel(
            model,
            step_name_prefix=self._name,
            step_config=model_step_config,
            event_stream_handler=event_stream_handler or wrapped.event_stream_handler,
            non_retryable_model_errors=non_retryable_model_errors,
        )
        self._capability = DurableToolsetsCapability(self._plan)
        self._model_override: ContextVar[DBOSModel | None] = ContextVar(f'{self._name}_model_override', default=None)

        # DBOS records a workflow's function by name; plain closures (not bound methods) carry DBOS's metadata.
        async def run_workflow(user_prompt: UserPrompt = None, **inputs: Any) -> AgentRunResult[Any]:
            return await self._run_in_workflow(user_prompt, **inputs)

        def run_sync_workflow(user_prompt: UserPrompt = None, **inputs: Any) -> AgentRunResult[Any]:
            return self._run_sync_in_workflow(user_prompt, **inputs)

        workflow_names = [dbos_workflow_name(self._name, 'run'), dbos_workflow_name(self._name, 'run_sync')]
        self._run_workflow = DBOS.workflow(name=workflow_names[0])(run_workflow)
        self._run_sync_workflow = DBOS.workflow(name=workflow_names[1])(run_sync_workflow)
        # DBOS leaves the workflows of another application version PENDING in silence: we name them at launch.
        warn_about_other_versions_at_launch(self._name, workflow_names)

    @property
    def model(self) -> Model:
        """The agent's model, wrapped so that its requests are DBOS steps."""
        return self._model

    @property
    def _user_event_stream_handler(self) -> EventStreamHandler[AgentDepsT] | None:
        return self._event_stream_handler or super().event_stream_handler

    @property
    def event_stream_handler(self) -> EventStreamHandler[AgentDepsT] | None:
        """The event stream handler given to the wrapper, else the wrapped agent's.

        In workflow code, one that reads the stream there and calls that handler once per event (see `run`).
        """
        handler = self._user_event_stream_handler
        if not in_workflow_code():
            return handler
        # Set by the `run` workflow only: `iter` in a workflow publishes nothing.
        topic = current_event_stream_topic()
        if handler is None and topic is None:
            return None
        return handle_each_event(handler, topic)

    @property
    def event_stream_topic(self) -> EventStreamTopic | None:
        """Where the `run` workflows publish their events (`event_stream_topic=`), or `None`."""
        return self._event_stream_topic

    def stream_agent_events(
        self,
        workflow_id: str,
        *,
        topic: str | EventStreamTopic | None = None,
        output_type: Any = None,
        from_offset: int = 0,
        polling_interval: timedelta | None = None,
        client: DBOSClient | None = None,
    ) -> DurableAgentRunEvents[OutputDataT]:
        """The live events of this agent's `run` workflow `workflow_id`, ending with its `AgentRunResultEvent`.

        See [`stream_agent_events`][durable_dbos.stream_agent_events]; this fills in the agent's topic and output
        type. Start the run with a known workflow id (`with SetWorkflowID(workflow_id): await agent.run(...)`).

        Args:
            workflow_id: The `run` workflow (a `run_sync` workflow publishes through its child `run` workflow).
            topic: Another topic than the agent's.
            output_type: The type to decode the result's output as; the agent's output type by default.
            from_offset: `0`, or `events.offset + 1` of an earlier consumer.
            polling_interval: How often to look for new events where DBOS cannot be notified of them.
            client: Read through this `DBOSClient` instead of the launched DBOS of this process.

        Raises:
            UserError: The agent has no topic and none is passed.
        """
        events: DurableAgentRunEvents[Any] = stream_agent_events(
            workflow_id,
            configured_topic(topic, self._event_stream_topic, owner=f'The DBOSAgent {self._name!r}'),
            output_type=self.output_type if output_type is None else output_type,
            from_offset=from_offset,
            polling_interval=polling_interval,
            client=client,
        )
        return events

    @property
    def toolsets(self) -> Sequence[AbstractToolset[AgentDepsT]]:
        """The agent's toolsets as runs use them (leaves replaced by their DBOS wrappers)."""
        return [self._plan.wrap(toolset) for toolset in super().toolsets]

    # --- what runs inside the workflows ----------------------------------------------------------------------------

    async def _run_in_workflow(self, user_prompt: UserPrompt = None, **inputs: Any) -> AgentRunResult[Any]:
        handler = inputs.get('event_stream_handler')
        topic = self._event_stream_topic
        with run_event_stream_handler(handler), run_event_stream_topic(topic):
            if handler is not None:
                # The model steps get the run's handler itself (it reads their live streams inside them); the agent
                # graph's stream is read in workflow code (`handle_each_event`).
                inputs = {**inputs, 'event_stream_handler': handle_each_event(handler, topic)}
            result = await self._agent_run(RunArguments.from_kwargs(user_prompt, self._live_inputs(inputs)))
            if topic is not None:
                # The workflow is the run: nothing follows the terminal event, so the stream is closed.
                await publish_run_result(topic, result, close=True)
            return result

    def _run_sync_in_workflow(self, user_prompt: UserPrompt = None, **inputs: Any) -> AgentRunResult[Any]:
        # Like the reference: the sync workflow runs the async `run` workflow as its child (which records the
        # reference again).
        return get_event_loop().run_until_complete(self.run(user_prompt, **self._live_inputs(inputs)))

    def _live_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The recorded inputs with the live deps in place of the reference that was recorded."""
        if self.deps_resolver is None or 'deps' not in inputs:
            return inputs
        return {**inputs, 'deps': resolve_deps(self.deps_resolver, inputs['deps'])}

    @contextmanager
    def _durable_run(self, model: Any) -> Generator[None]:
        chosen = model if model is not None else (self._model_override.get() or self._model)
        with (
            self.wrapped.override(model=chosen),
            ordered_tool_call_events(self._parallel_execution_mode),
        ):
            yield

    def _check_model(self, model: Any, *, where: str) -> None:
        if model is not None and not isinstance(model, DBOSModel):
            raise UserError(
                f'A DBOS agent only uses `DBOSModel`s: a plain model {where} would run its requests outside DBOS '
                'steps. Set the model when constructing the agent, or wrap it: '
                '`DBOSModel(model, step_name_prefix=..., step_config=...)` (constructed before `DBOS.launch()`).'
            )

    def _workflow_inputs(self, arguments: RunArguments[Any], *, entry_point: str) -> dict[str, Any]:
        # Everything the workflow could not record or recover is refused here, before it starts.
        refuse_unrecordable_keywords(arguments, entry_point=entry_point)
        self._check_model(arguments.model, where='passed at run time')
        self._plan.check(arguments.toolsets)
        inputs = without_refused_keywords(arguments.run_kwargs())
        if self.deps_resolver is not None and 'deps' in inputs:
            # DBOS records the workflow's inputs: the reference, never the live deps.
            inputs['deps'] = reference_deps(self.deps_resolver, inputs['deps'])
        check_picklable_inputs(inputs)
        return inputs

    def _durable_container(self) -> str | None:
        return 'a DBOS workflow' if in_workflow_code() else None

    def _external_event_wait(self) -> ExternalEventWait | None:
        # Our durable wait (pydantic-ai 2.78's `wait_for_external_event` in workflow code): a message ends it.
        return DBOSEventWait(self._name)
