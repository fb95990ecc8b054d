"""[`PrefectAgent`][durable_prefect.PrefectAgent]: a pydantic-ai agent whose runs are Prefect flows."""

from __future__ import annotations

import dataclasses
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from typing import Any
from uuid import UUID

from prefect.context import FlowRunContext, TaskRunContext
from pydantic_ai.agent import AbstractAgent, AgentRunResult, EventStreamHandler
from pydantic_ai.output import OutputDataT
from pydantic_ai.tools import AgentDepsT
from pydantic_ai.toolsets import AbstractToolset

from durable_kernel import (
    DepsResolver,
    DurableAgentRunEvents,
    EventStreamTopic,
    NonRetryableModelErrors,
    RunArguments,
    coerce_event_stream_topic,
    is_permanent_model_error,
    prefect_flow_name,
    reference_deps,
    resolve_deps,
    scoped_context_value,
)

from ._agent_base import PrefectifyToolsetFunc
from ._deps import run_deps_resolver
from ._entry_points import PrefectEntryPoints
from ._event_handler import event_handler_in_tasks
from ._foreign_runs import AGENT_FLOW_VERSION, warn_if_foreign_agent_runs_repeat, warn_if_foreign_agent_runs_repeat_sync
from ._live_events import (
    DEFAULT_POLLING_INTERVAL,
    current_channel,
    publish_run_result,
    publishing_handler,
    run_channel,
    stream_agent_events,
    topic_to_read,
)
from ._model import PrefectModel, stream_handler_override
from ._prefectify import prefectify_toolset
from ._reference_results import reference_subflows
from ._task_config import TaskConfig

__all__ = ('PrefectAgent',)

_caller_flow: ContextVar[FlowRunContext | None] = ContextVar('durable_prefect_caller_flow', default=None)
"""The flow run that called `PrefectAgent.run` (`None` at top level): a subflow publishes live events to it."""


class PrefectAgent(PrefectEntryPoints[AgentDepsT, OutputDataT]):
    """An agent whose runs are Prefect flows and whose model requests, tool calls and MCP calls are Prefect tasks.

    `run` is a flow named `{name} Run` (`run_sync`: `{name} Sync Run`), a subflow when called inside a flow. Each
    task's result is persisted under a cache key computed from its inputs *by value* (see
    [`DEFAULT_CACHE_POLICY`][durable_prefect.DEFAULT_CACHE_POLICY]): a retried or resumed flow run reuses the
    model requests and tool calls it completed, and two runs that differ in prompt, deps, metadata or message
    history never share a result.
    """

    def __init__(
        self,
        wrapped: AbstractAgent[AgentDepsT, OutputDataT],
        *,
        name: str | None = None,
        event_stream_handler: EventStreamHandler[AgentDepsT] | None = None,
        mcp_task_config: TaskConfig | None = None,
        model_task_config: TaskConfig | None = None,
        tool_task_config: TaskConfig | None = None,
        tool_task_config_by_name: dict[str, TaskConfig | None] | None = None,
        event_stream_handler_task_config: TaskConfig | None = None,
        prefectify_toolset_func: PrefectifyToolsetFunc[AgentDepsT] = prefectify_toolset,
        non_retryable_model_errors: NonRetryableModelErrors = is_permanent_model_error,
        deps_resolver: DepsResolver[AgentDepsT, Any] | None = None,
        event_stream_topic: str | EventStreamTopic | None = None,
    ):
        """Make `wrapped` durable on Prefect: its runs become flows, its model, tool and MCP I/O become cached tasks.

        The wrapped agent itself is not changed: used directly, it still runs without Prefect.

        Args:
            wrapped: The agent to make durable.
            name: Unique agent name, used as the prefix of the flow names; defaults to the wrapped agent's name.
            event_stream_handler: Event stream handler to use instead of the wrapped agent's one.
            mcp_task_config: Task config of MCP tool listing and MCP tool calls.
            model_task_config: Task config of model requests.
            tool_task_config: Task config of every tool call not named in `tool_task_config_by_name`.
            tool_task_config_by_name: Per-tool task configs, merged over `tool_task_config`; `None` runs that
                tool without a task.
            event_stream_handler_task_config: Task config of the `Handle Stream Event` tasks.
            prefectify_toolset_func: Wraps each leaf toolset for Prefect; the default,
                [`prefectify_toolset`][durable_prefect.prefectify_toolset], handles function, dynamic and MCP
                toolsets. It receives the toolset, the MCP task config, the tool task config and the per-tool
                configs.
            non_retryable_model_errors: The model errors that fail a model task at once even when
                `model_task_config` allows retries: exception classes, or a function `error -> bool`. The default,
                [`is_permanent_model_error`][durable_kernel.is_permanent_model_error], covers a 4xx response other
                than 408, 409 and 429, a content filter and a `UserError`; `()` retries every error as
                `model_task_config` says.
            deps_resolver: Keeps clients and credentials out of what Prefect records: the flow run holds a small
                reference (`reference(deps)`) and rebuilds the live deps from it on every attempt
                (`resolve(reference)`); the tasks see the live deps. See [`DepsResolver`][durable_kernel.DepsResolver].
            event_stream_topic: Publish every run's events to this topic, for
                [`stream_agent_events`][durable_prefect.stream_agent_events] to read from another process while the
                run executes: the model's streamed events from inside the model request task, in batches, the other
                events and the result from the flow (see "Live events" in the Prefect docs). Without it, or outside
                a flow, nothing is published.

        Every config is merged over [`DEFAULT_TASK_CONFIG`][durable_prefect.DEFAULT_TASK_CONFIG]; the caller's
        dicts are never modified.

        Raises:
            UserError: When there is no name, or the wrapped agent has no model.
        """
        self.deps_resolver = deps_resolver
        self.event_stream_topic: EventStreamTopic | None = coerce_event_stream_topic(event_stream_topic)
        super().__init__(
            wrapped,
            name=name,
            event_stream_handler=event_stream_handler,
            mcp_task_config=mcp_task_config,
            model_task_config=model_task_config,
            tool_task_config=tool_task_config,
            tool_task_config_by_name=tool_task_config_by_name,
            event_stream_handler_task_config=event_stream_handler_task_config,
            prefectify_toolset_func=prefectify_toolset_func,
            non_retryable_model_errors=non_retryable_model_errors,
        )

    # The resolver is bound here, around the flows that `PrefectAgentBase` defines, and not inside them: Prefect
    # finds a resumed run's subflow by a key over the flow function's file and line, which must not move. So is the
    # check for an unfinished agent run of other code that the flow run leaves behind.

    async def _run_in_flow(self, arguments: RunArguments[AgentDepsT]) -> AgentRunResult[Any]:
        foreign = await warn_if_foreign_agent_runs_repeat(prefect_flow_name(self._name, 'run'), AGENT_FLOW_VERSION)
        with scoped_context_value(_caller_flow, FlowRunContext.get()), reference_subflows(foreign):
            return await super()._run_in_flow(self._with_deps_reference(arguments))

    def _durable_container(self) -> str | None:
        return 'a Prefect flow' if FlowRunContext.get() is not None else None

    _unit_plural = 'tasks'
    _workspace_advice = 'Do the workspace work in a tool (each tool call is a task), or outside {container}.'

    def _in_container_code(self) -> bool:
        # Flow code, not a task inside the flow (a tool's task), where `FlowRunContext` is set as well.
        return FlowRunContext.get() is not None and TaskRunContext.get() is None

    def _run_sync_in_flow(self, arguments: RunArguments[AgentDepsT]) -> AgentRunResult[Any]:
        foreign = warn_if_foreign_agent_runs_repeat_sync(prefect_flow_name(self._name, 'run_sync'), AGENT_FLOW_VERSION)
        with scoped_context_value(_caller_flow, FlowRunContext.get()), reference_subflows(foreign):
            return super()._run_sync_in_flow(self._with_deps_reference(arguments))

    async def _run_in_agent(self, arguments: RunArguments[AgentDepsT]) -> AgentRunResult[Any]:
        # The flow's body: on every attempt of the flow run, the live deps are rebuilt from the reference it holds.
        if self.deps_resolver is not None:
            arguments = dataclasses.replace(arguments, deps=resolve_deps(self.deps_resolver, arguments.deps))
        if self.event_stream_topic is None or FlowRunContext.get() is None:
            return await super()._run_in_agent(arguments)
        # A subflow publishes to its caller's flow run: a retried caller runs a fresh subflow, under another id.
        with run_channel(self.event_stream_topic, _caller_flow.get()):
            channel = current_channel()
            assert channel is not None
            handler = arguments.event_stream_handler
            # As `PrefectAgentBase._run_in_agent`, with the flow-side publisher in front of the handler's tasks.
            in_tasks = event_handler_in_tasks(handler, self._event_task_config) if handler is not None else None
            flow_handler = publishing_handler(channel, in_tasks or self.event_stream_handler)
            with scoped_context_value(stream_handler_override, handler):
                result = await self._agent_run(dataclasses.replace(arguments, event_stream_handler=flow_handler))
            await publish_run_result(channel, result)
            return result

    def stream_agent_events(
        self,
        flow_run_id: UUID | str,
        *,
        topic: str | EventStreamTopic | None = None,
        output_type: Any = Any,
        from_offset: int = 0,
        polling_interval: timedelta = DEFAULT_POLLING_INTERVAL,
    ) -> DurableAgentRunEvents[Any]:
        """The live events of this agent's run in `flow_run_id`, on its `event_stream_topic` (see the module function).

        Args:
            flow_run_id: The run's `{name} Run` flow run at top level; the calling flow's run for a subflow.
            topic: Another topic to read than the agent's own.
            output_type: The agent's output type, to decode the result's output; `Any` gives it as JSON data.
            from_offset: `0`, or `events.offset + 1` of an earlier consumer to continue after its last event.
            polling_interval: How often to ask the Prefect API for new events.

        Raises:
            UserError: The agent has no `event_stream_topic` and no `topic` is given.
        """
        return stream_agent_events(
            flow_run_id,
            topic_to_read(self.event_stream_topic, topic, f'The PrefectAgent {self._name!r}'),
            output_type=output_type,
            from_offset=from_offset,
            polling_interval=polling_interval,
        )

    def _with_deps_reference(self, arguments: RunArguments[AgentDepsT]) -> RunArguments[AgentDepsT]:
        """The run's arguments as the flow run holds them: with a resolver, the reference in place of the deps."""
        if self.deps_resolver is None:
            return arguments
        return dataclasses.replace(arguments, deps=reference_deps(self.deps_resolver, arguments.deps))

    @contextmanager
    def _durable_overrides(
        self, model: PrefectModel | None, run_toolsets: Sequence[AbstractToolset[AgentDepsT]] | None
    ) -> Generator[None]:
        # The tasks' cache keys see the deps as the resolver's reference (see `_deps.py`).
        with (
            scoped_context_value(run_deps_resolver, self.deps_resolver),
            super()._durable_overrides(model, run_toolsets),
        ):
            yield
