"""The Temporal routing of `TemporalAgent`'s entry points: durable `run` in a workflow, refusals, the plain agent elsewhere.

The public signatures are declared once, in [`DurableWrapperAgent`][durable_kernel.DurableWrapperAgent].
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator
from contextlib import AbstractContextManager, asynccontextmanager
from typing import Any

from pydantic_ai import models
from pydantic_ai.agent import AgentRun, AgentRunResult
from pydantic_ai.exceptions import UserError
from pydantic_ai.output import OutputDataT
from pydantic_ai.result import StreamedRunResult
from pydantic_ai.tools import AgentDepsT
from temporalio import workflow

from durable_kernel import DurableWrapperAgent, RunArguments, run_may_be_instrumented

from ._replay_tracing import ReplaySafeTelemetry

__all__ = ('TemporalEntryPoints',)

_USE_RUN = 'Set an `event_stream_handler` on the TemporalAgent and use `await agent.run()` instead.'

# Why each run keyword of pydantic-ai 2.x (`durable_kernel.RUN_KEYWORDS_2`) that cannot be carried into a durable run
# is refused inside a workflow. `conversation` (plain data standing for `message_history`, `usage` and
# `conversation_id`) and `run_id` (a string) are carried: the loop runs in workflow code with them, and the run context
# that activities receive holds the `run_id`. So is `compact` (2.78: `True` or a dict): it only asks the capabilities'
# compaction hooks to run before the first model request, and the model work they do (`compact_messages`) is an
# activity like any model request.
_CARRIED_RUN_KEYWORDS = frozenset({'conversation', 'run_id', 'compact'})
_REFUSED_RUN_KEYWORDS: dict[str, str] = {
    'cancellation_token': (
        'a cancellation token is a live object of the calling process: it cannot cross into activities, and a '
        'replay of the workflow would not see it cancelled. Cancel the workflow instead (`WorkflowHandle.cancel()`), '
        'which cancels its running activities, or cancel the task that awaits `run()` inside the workflow.'
    ),
    'timeout': (
        "the run's deadline would be measured by workflow code and would not bound the activities it schedules. Set "
        "the workflow's `execution_timeout` (or `run_timeout`) when starting it, and the activities' "
        '`start_to_close_timeout` with `TemporalAgent(activity_config=...)`.'
    ),
    'workspace': (
        'a workspace is a live environment (files, processes) whose operations would run in workflow code, outside '
        'any activity, and be repeated on replay. Give the tools that need it their own access inside their '
        'activities (for example through `deps`), or use the workspace outside the workflow.'
    ),
}


def _refuse_run_keywords(arguments: RunArguments[Any]) -> None:
    arguments.refuse_run_keywords(
        carried=_CARRIED_RUN_KEYWORDS, refused=_REFUSED_RUN_KEYWORDS, where='`run()` inside a Temporal workflow'
    )


def _refuse_in_workflow(entry_point: str, alternative: str = _USE_RUN) -> None:
    if workflow.in_workflow():
        raise UserError(f'`agent.{entry_point}()` cannot be used inside a Temporal workflow. {alternative}')


class TemporalEntryPoints(DurableWrapperAgent[AgentDepsT, OutputDataT], ABC):
    """`run`, `run_sync`, `run_stream`, `run_stream_events` and `iter` with Temporal's rules.

    Outside a workflow every entry point is the wrapped agent's (a `model=` key registered with `models=` is resolved
    to its model). Inside one, only `run` may be used: model requests and tool I/O run as activities, the model must
    be the wrapped agent's, a model registered with `models=` (instance or key) or a provider string, `deps` must be
    serializable by pydantic, and `event_stream_handler` and `toolsets` cannot be given at run time (set them when
    creating the agent, so their activities exist). Of the keywords pydantic-ai 2.x added, `conversation`, `run_id`
    and `compact` are carried into the durable run; `cancellation_token`, `timeout` and `workspace` are refused with a
    `UserError`.
    """

    @abstractmethod
    def _durable_scope(self, model: models.Model | str | None) -> AbstractContextManager[None]:
        """Inside a workflow: swap in the durable model and toolsets for the block."""

    def _run_capabilities(self) -> list[Any]:
        """Capabilities this wrapper adds to a run (the dispatchers of durable capability operations)."""
        return []

    @abstractmethod
    def _in_durable_run(self) -> bool:
        """Whether `iter` is being called by `run` in a workflow."""

    @abstractmethod
    def _resolve_model_outside_workflow(self, model: models.Model | str | None) -> models.Model:
        """The model to give the plain agent for a `model=` argument outside a workflow."""

    @abstractmethod
    def _model_argument_in_workflow(self) -> models.Model | None:
        """The `model=` to give the wrapped agent inside a workflow, where the durable model is its override."""

    async def _run_impl(self, arguments: RunArguments[AgentDepsT]) -> AgentRunResult[Any]:
        if not workflow.in_workflow():
            return await self._agent_run(arguments)
        if arguments.event_stream_handler is not None:
            raise UserError(
                'An event stream handler cannot be given to `run()` inside a Temporal workflow: its activity must be '
                'registered when the worker starts. Pass `event_stream_handler=` to `TemporalAgent(...)` instead.'
            )
        if arguments.toolsets is not None:
            raise UserError(
                'Toolsets cannot be given to `run()` inside a Temporal workflow: their activities must be registered '
                'when the worker starts. Add them to the agent before wrapping it in `TemporalAgent(...)`.'
            )
        _refuse_run_keywords(arguments)
        capabilities = list(arguments.capabilities or ())
        # For this run only, and only if it may emit spans: no span of replayed workflow code is emitted again (see
        # `_replay_tracing`). An uninstrumented run is not given the capability, which would only cost it time.
        if run_may_be_instrumented(self.wrapped, capabilities, run_spec=arguments.spec):
            capabilities.append(ReplaySafeTelemetry())
        with self._durable_scope(arguments.model):
            in_workflow = dataclasses.replace(
                arguments,
                model=None,
                event_stream_handler=self.event_stream_handler,
                capabilities=capabilities or None,
            )
            return await self._agent_run(in_workflow)

    def _run_sync_impl(self, arguments: RunArguments[AgentDepsT]) -> AgentRunResult[Any]:
        _refuse_in_workflow('run_sync', 'Use `await agent.run()` instead.')
        return super()._run_sync_impl(arguments)

    @asynccontextmanager
    async def _run_stream_impl(
        self, arguments: RunArguments[AgentDepsT]
    ) -> AsyncGenerator[StreamedRunResult[AgentDepsT, Any]]:
        _refuse_in_workflow('run_stream')
        async with super()._run_stream_impl(arguments) as streamed:
            yield streamed

    def _run_stream_events_impl(self, arguments: RunArguments[AgentDepsT]) -> Any:
        _refuse_in_workflow('run_stream_events')
        return super()._run_stream_events_impl(arguments)

    @asynccontextmanager
    async def _iter_impl(self, arguments: RunArguments[AgentDepsT]) -> AsyncGenerator[AgentRun[AgentDepsT, Any]]:
        resolved: models.Model | None = None
        if workflow.in_workflow():
            if not self._in_durable_run():
                _refuse_in_workflow('iter')
            resolved = self._model_argument_in_workflow()
        else:
            resolved = self._resolve_model_outside_workflow(arguments.model)
        arguments = dataclasses.replace(arguments, model=resolved)
        if extra := self._run_capabilities():
            arguments = dataclasses.replace(arguments, capabilities=[*(arguments.capabilities or ()), *extra])
        async with super()._iter_impl(arguments) as agent_run:
            yield agent_run
