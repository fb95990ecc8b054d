"""The DBOS routing of `DBOSAgent`'s entry points (their public signatures are declared once, in the kernel)."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Callable, Generator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any

from pydantic_ai.agent import AgentRun, AgentRunResult
from pydantic_ai.exceptions import UserError
from pydantic_ai.output import OutputDataT
from pydantic_ai.result import StreamedRunResult
from pydantic_ai.tools import AgentDepsT

from durable_kernel import (
    UNSET,
    DurableWrapperAgent,
    OverrideArguments,
    RunArguments,
    Unset,
    is_set,
    scoped_context_value,
)

from ._context import in_workflow_code
from ._durable import DurableToolsetsCapability
from ._model import DBOSModel
from ._run_keywords import refuse_unrecordable_keywords
from ._step_layout import workflow_step_record

__all__ = ('DBOSEntryPoints',)


class DBOSEntryPoints(DurableWrapperAgent[AgentDepsT, OutputDataT], ABC):
    """The run hooks of [`DBOSAgent`][durable_dbos.DBOSAgent]; the attributes below are set by its constructor.

    `run`/`run_sync` start the DBOS workflows `{name}.run`/`{name}.run_sync` (child workflows inside a workflow):
    their inputs are pickled by DBOS, so an input that cannot be pickled (for example `deps` holding a connection)
    raises a `UserError`. A run-time `model` must be a [`DBOSModel`][durable_dbos.DBOSModel]; run-time `toolsets`
    are made durable like the agent's own. `iter` runs with the DBOS model and durable toolsets: inside a workflow
    model requests and tool calls are its steps, outside one they are plain calls. `run_stream` works outside
    workflows only (not durable) and `run_stream_events` is refused: use an `event_stream_handler` with `run`.
    Of the run keywords pydantic-ai 2.x added, `conversation`, `run_id` and `compact` are recorded with the workflow's inputs;
    `cancellation_token`, `timeout` and `workspace` are refused by `run`, `run_sync`, and `iter` inside a workflow.
    """

    _capability: DurableToolsetsCapability
    _model_override: ContextVar[DBOSModel | None]
    _run_workflow: Callable[..., Any]
    _run_sync_workflow: Callable[..., Any]

    # The hooks `DBOSAgent` implements (abstract methods, as `TemporalEntryPoints`' are).
    @abstractmethod
    def _workflow_inputs(self, arguments: RunArguments[AgentDepsT], *, entry_point: str) -> dict[str, Any]:
        """The keyword inputs of the run workflow for these run arguments (what DBOS records)."""

    @abstractmethod
    def _durable_run(self, model: Any) -> AbstractContextManager[None]:
        """For the block: swap in the DBOS model and durable toolsets."""

    @abstractmethod
    def _check_model(self, model: Any, *, where: str) -> None:
        """Refuse a run-time `model` that is not a `DBOSModel` (a `UserError` naming `where`)."""

    async def _run_impl(self, arguments: RunArguments[AgentDepsT]) -> AgentRunResult[Any]:
        inputs = self._workflow_inputs(arguments, entry_point='run')
        return await self._run_workflow(arguments.user_prompt, **inputs)

    def _run_sync_impl(self, arguments: RunArguments[AgentDepsT]) -> AgentRunResult[Any]:
        inputs = self._workflow_inputs(arguments, entry_point='run_sync')
        return self._run_sync_workflow(arguments.user_prompt, **inputs)

    @asynccontextmanager
    async def _iter_impl(self, arguments: RunArguments[AgentDepsT]) -> AsyncGenerator[AgentRun[AgentDepsT, Any]]:
        if in_workflow_code():
            # Inside a workflow, `iter` runs the agent in workflow code: the same keywords cannot be made durable.
            refuse_unrecordable_keywords(arguments, entry_point='iter')
        self._check_model(arguments.model, where='passed at run time')
        with self._durable_run(arguments.model), workflow_step_record():
            capabilities = [*(arguments.capabilities or ()), self._capability]
            async with super()._iter_impl(dataclasses.replace(arguments, capabilities=capabilities)) as run:
                yield run

    @asynccontextmanager
    async def _run_stream_impl(
        self, arguments: RunArguments[AgentDepsT]
    ) -> AsyncGenerator[StreamedRunResult[AgentDepsT, Any]]:
        if in_workflow_code():
            raise UserError(
                '`agent.run_stream()` cannot be used inside a DBOS workflow: a live stream cannot be replayed on '
                'recovery. Set an `event_stream_handler` on the agent (or pass one to `run`) and use '
                '`agent.run()`: the handler receives the streamed events inside the model request step.'
            )
        self._check_model(arguments.model, where='passed at run time')
        async with super()._run_stream_impl(arguments) as result:
            yield result

    def _run_stream_events_impl(self, arguments: RunArguments[AgentDepsT]) -> Any:
        raise UserError(
            '`agent.run_stream_events()` cannot be used with DBOS: its events are produced outside any workflow, '
            'so nothing would be durable. Set an `event_stream_handler` on the `DBOSAgent` (or pass '
            '`event_stream_handler=` to `run`) and use `agent.run()`: model events reach the handler inside the '
            'model request step, tool events in the workflow.'
        )

    @contextmanager
    def _override_impl(self, arguments: OverrideArguments[AgentDepsT]) -> Generator[None]:
        # Overrides live in the calling context: a workflow recovered in another process does not see them.
        model: DBOSModel | Unset = UNSET
        if is_set(arguments.model):
            self._check_model(arguments.model, where='in `override`')
            assert isinstance(arguments.model, DBOSModel)
            model = arguments.model
        with scoped_context_value(self._model_override, model), super()._override_impl(arguments):
            yield
