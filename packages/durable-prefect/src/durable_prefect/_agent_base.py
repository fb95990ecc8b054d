"""The machinery behind [`PrefectAgent`][durable_prefect.PrefectAgent]: wrapping, overrides, flows and refusals."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from prefect import flow
from prefect.context import FlowRunContext
from prefect.utilities.asyncutils import run_coro_as_sync
from pydantic_ai import models
from pydantic_ai.agent import AbstractAgent, AgentRunResult, EventStreamHandler
from pydantic_ai.exceptions import UserError
from pydantic_ai.models import Model
from pydantic_ai.output import OutputDataT
from pydantic_ai.tools import AgentDepsT
from pydantic_ai.toolsets import AbstractToolset, FunctionToolset

from durable_kernel import (
    UNSET,
    DurableWrapperAgent,
    NonRetryableModelErrors,
    OverrideArguments,
    RunArguments,
    Unset,
    is_set,
    prefect_flow_name,
    require_agent_name,
    scoped_context_value,
)

from ._event_handler import event_handler_in_tasks
from ._model import PrefectModel, stream_handler_override
from ._task_config import TaskConfig, merge_task_config

__all__ = ('PrefectAgentBase', 'PrefectifyToolsetFunc')

_CARRIED_RUN_KEYWORDS = frozenset({'conversation', 'run_id'})
"""pydantic-ai 2.x run keywords carried into the flow run: plain data; a conversation's messages enter the cache keys as
any message history does, and run ids never do (they are per attempt, not per work)."""

_REFUSED_RUN_KEYWORDS: dict[str, str] = {
    'cancellation_token': (
        'it is a handle in this process, which a retried or resumed flow run (possibly in another process) cannot '
        'reach. Cancel the Prefect flow run instead.'
    ),
    'timeout': (
        'its clock would start again on every retry or resumption of the flow run. Set `timeout_seconds` on the '
        'task configs (`model_task_config=`, `tool_task_config=`, ...) or on a flow that calls the agent instead.'
    ),
    'workspace': (
        "pydantic-ai sets a workspace up and uses it in the run's own code, which is flow code outside any task, so "
        'its I/O (creating the environment, running commands, writing files) would be repeated when the flow run is '
        'retried or resumed. Open the workspace inside the tools that need it: tool calls run in tasks.'
    ),
}
"""pydantic-ai 2.x run keywords that cannot cross into a durable flow run, and why.

A keyword of `durable_kernel.RUN_KEYWORDS_2` that is in neither table is refused too, until someone checks it.
"""

PrefectifyToolsetFunc = Callable[
    [AbstractToolset[AgentDepsT], TaskConfig, TaskConfig, dict[str, TaskConfig | None]], AbstractToolset[AgentDepsT]
]
"""Wraps one leaf toolset for Prefect: `(toolset, mcp_task_config, tool_task_config, tool_task_config_by_name)`."""


class PrefectAgentBase(DurableWrapperAgent[AgentDepsT, OutputDataT]):
    """Shared state and helpers of [`PrefectAgent`][durable_prefect.PrefectAgent]."""

    def __init__(
        self,
        wrapped: AbstractAgent[AgentDepsT, OutputDataT],
        *,
        name: str | None,
        event_stream_handler: EventStreamHandler[AgentDepsT] | None,
        mcp_task_config: TaskConfig | None,
        model_task_config: TaskConfig | None,
        tool_task_config: TaskConfig | None,
        tool_task_config_by_name: dict[str, TaskConfig | None] | None,
        event_stream_handler_task_config: TaskConfig | None,
        prefectify_toolset_func: PrefectifyToolsetFunc[AgentDepsT],
        non_retryable_model_errors: NonRetryableModelErrors,
    ) -> None:
        super().__init__(wrapped)
        agent_name = require_agent_name(name or wrapped.name, engine='Prefect')
        self._name: str = agent_name
        if not isinstance(wrapped.model, Model):
            raise UserError(
                f'The agent {agent_name!r} has no model: a PrefectAgent needs one at construction time, because '
                'model requests are wrapped in Prefect tasks then. Pass `model=` to the wrapped `Agent(...)`.'
            )
        self._handler = event_stream_handler
        self._mcp_task_config = merge_task_config(mcp_task_config)
        self._model_task_config = merge_task_config(model_task_config)
        self._tool_task_config = merge_task_config(tool_task_config)
        self._tool_task_config_by_name: dict[str, TaskConfig | None] = dict(tool_task_config_by_name or {})
        self._event_task_config = merge_task_config(event_stream_handler_task_config)
        self._prefectify_toolset_func = prefectify_toolset_func
        self._model = PrefectModel(
            wrapped.model,
            task_config=self._model_task_config,
            event_stream_handler=self._raw_event_stream_handler,
            non_retryable_model_errors=non_retryable_model_errors,
        )
        self._toolsets: list[AbstractToolset[AgentDepsT]] = self._prefectify_all(wrapped.toolsets)
        # What `override()` set on this wrapper: kept here (not on the wrapped agent) because every run installs
        # its own Prefect-wrapped model and toolsets over the wrapped agent.
        self._override_model: ContextVar[PrefectModel | None] = ContextVar(f'{agent_name}_prefect_model', default=None)
        self._override_toolsets: ContextVar[list[AbstractToolset[AgentDepsT]] | None] = ContextVar(
            f'{agent_name}_prefect_toolsets', default=None
        )

    # ----- properties -----

    @property
    def name(self) -> str | None:
        return self._name

    @name.setter
    def name(self, value: str | None) -> None:
        raise UserError(
            'A PrefectAgent name cannot change (it names flows and identifies runs): create a new PrefectAgent.'
        )

    @property
    def model(self) -> Model:
        return self._model

    @property
    def _raw_event_stream_handler(self) -> EventStreamHandler[AgentDepsT] | None:
        return self._handler or self.wrapped.event_stream_handler

    @property
    def event_stream_handler(self) -> EventStreamHandler[AgentDepsT] | None:
        handler = self._raw_event_stream_handler
        if handler is None or FlowRunContext.get() is None:
            return handler
        return event_handler_in_tasks(handler, self._event_task_config)

    @property
    def toolsets(self) -> Sequence[AbstractToolset[AgentDepsT]]:
        with self._durable_overrides(None, None):
            return super().toolsets

    # ----- helpers used by the entry points -----

    def _prefectify(self, toolset: AbstractToolset[AgentDepsT]) -> AbstractToolset[AgentDepsT]:
        return self._prefectify_toolset_func(
            toolset, self._mcp_task_config, self._tool_task_config, self._tool_task_config_by_name
        )

    def _prefectify_all(self, toolsets: Sequence[AbstractToolset[AgentDepsT]]) -> list[AbstractToolset[AgentDepsT]]:
        return [toolset.visit_and_replace(self._prefectify) for toolset in toolsets]

    @contextmanager
    def _durable_overrides(
        self, model: PrefectModel | None, run_toolsets: Sequence[AbstractToolset[AgentDepsT]] | None
    ) -> Generator[None]:
        """Install the Prefect model and toolsets (plus the run's own toolsets, wrapped too) on the wrapped agent."""
        toolsets = self._override_toolsets.get()
        toolsets = [*(self._toolsets if toolsets is None else toolsets), *self._prefectify_all(run_toolsets or ())]
        chosen_model = model or self._override_model.get() or self._model
        with super()._override_impl(OverrideArguments(model=chosen_model, toolsets=toolsets, tools=[])):
            yield

    def _check_run_model(self, model: models.Model | models.KnownModelName | str | None) -> PrefectModel | None:
        if model is None or isinstance(model, PrefectModel):
            return model
        raise UserError(
            f'The model {model!r} given at run time is not a PrefectModel, so its requests would not be Prefect tasks. '
            'Set the model when creating the agent, or pass a `PrefectModel(model)`.'
        )

    def _durable_run_arguments(self, arguments: RunArguments[AgentDepsT], entry_point: str) -> RunArguments[AgentDepsT]:
        """The arguments of a run that is about to be a flow run: refused keywords and toolsets fail before it starts.

        The run's own toolsets are wrapped here (a toolset that cannot be made durable raises a `UserError` now, not
        as a failed flow run); wrapped toolsets are not wrapped again when the run installs them.
        """
        self._refuse_run_keywords(arguments, entry_point)
        if arguments.toolsets is None:
            return arguments
        return dataclasses.replace(arguments, toolsets=self._prefectify_all(arguments.toolsets))

    def _refuse_run_keywords(self, arguments: RunArguments[AgentDepsT], entry_point: str) -> None:
        """Refuse the pydantic-ai 2.x run keywords that cannot cross into a durable flow run (none exist on 1.107)."""
        arguments.refuse_run_keywords(
            carried=_CARRIED_RUN_KEYWORDS,
            refused=_REFUSED_RUN_KEYWORDS,
            where=f'`{entry_point}()` of the PrefectAgent {self._name!r}, whose runs are durable Prefect flow runs',
        )

    def _refuse_in_flow(self, entry_point: str) -> None:
        if FlowRunContext.get() is not None:
            raise UserError(
                f'`{entry_point}()` cannot be used inside a Prefect flow: a flow cannot stream to its caller. '
                'Use `await agent.run(...)` with an `event_stream_handler` to receive events inside the flow.'
            )

    async def _run_in_agent(self, arguments: RunArguments[AgentDepsT]) -> AgentRunResult[Any]:
        """The body of the run flows: the agent loop, with events handled in tasks."""
        handler = arguments.event_stream_handler
        with scoped_context_value(stream_handler_override, handler):
            in_tasks = event_handler_in_tasks(handler, self._event_task_config) if handler is not None else None
            # The agent loop drives `self.iter`, which installs the Prefect model and toolsets.
            return await self._agent_run(dataclasses.replace(arguments, event_stream_handler=in_tasks))

    async def _run_in_flow(self, arguments: RunArguments[AgentDepsT]) -> AgentRunResult[Any]:
        @flow(name=prefect_flow_name(self._name, 'run'))
        async def run_flow() -> AgentRunResult[Any]:
            return await self._run_in_agent(arguments)

        return await run_flow()

    def _run_sync_in_flow(self, arguments: RunArguments[AgentDepsT]) -> AgentRunResult[Any]:
        @flow(name=prefect_flow_name(self._name, 'run_sync'))
        def run_sync_flow() -> AgentRunResult[Any]:
            return run_coro_as_sync(self._run_in_agent(arguments))

        return run_sync_flow()

    @contextmanager
    def _override_impl(self, arguments: OverrideArguments[AgentDepsT]) -> Generator[None]:
        # A `model` must be a `PrefectModel`; `toolsets` and `tools` are wrapped for Prefect like the agent's own.
        if is_set(arguments.workspace):
            # pydantic-ai 2.x only (always unset on 1.107): the overriding workspace would serve the flow runs.
            raise UserError(
                f'`override(workspace=...)` cannot be used with the PrefectAgent {self._name!r}: '
                f'{_REFUSED_RUN_KEYWORDS["workspace"]}.'
            )
        toolsets, tools = arguments.toolsets, arguments.tools
        model: PrefectModel | Unset = UNSET
        if is_set(arguments.model):
            if not isinstance(arguments.model, PrefectModel):
                raise UserError(
                    f'The override model {arguments.model!r} is not a PrefectModel, so its requests would not be '
                    'Prefect tasks. Wrap it: `agent.override(model=PrefectModel(model))`.'
                )
            model = arguments.model
        new_toolsets: list[AbstractToolset[AgentDepsT]] | Unset = UNSET
        if is_set(toolsets) or is_set(tools):
            given: list[AbstractToolset[AgentDepsT]] = []
            if is_set(tools):
                given.append(FunctionToolset[AgentDepsT](list(tools)))
            given.extend(toolsets if is_set(toolsets) else self.wrapped.toolsets[1:])
            if not is_set(tools):
                given.insert(0, self.wrapped.toolsets[0])
            new_toolsets = self._prefectify_all(given)
        unset = UNSET
        with (
            scoped_context_value(self._override_model, model),
            scoped_context_value(self._override_toolsets, new_toolsets),
            super()._override_impl(dataclasses.replace(arguments, model=unset, toolsets=unset, tools=unset)),
        ):
            yield
