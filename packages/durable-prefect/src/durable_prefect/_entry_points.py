"""The Prefect routing of [`PrefectAgent`][durable_prefect.PrefectAgent]'s entry points (signatures: the kernel)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager, nullcontext
from typing import Any

from prefect.context import FlowRunContext
from pydantic_ai.agent import AgentRun, AgentRunResult
from pydantic_ai.output import OutputDataT
from pydantic_ai.result import StreamedRunResult
from pydantic_ai.tools import AgentDepsT

from durable_kernel import RunArguments, ordered_tool_call_events

from ._agent_base import (
    _CARRIED_RUN_KEYWORDS,  # pyright: ignore[reportPrivateUsage]
    _REFUSED_RUN_KEYWORDS,  # pyright: ignore[reportPrivateUsage]
    PrefectAgentBase,
)
from ._key_text import message_key_cache

__all__ = ('PrefectEntryPoints',)

# `compact` (pydantic-ai 2.78) is carried too: it only asks the capabilities' compaction hooks to run before the first
# model request, and their model work (`compact_messages`) is a task. Added here, not in `_agent_base.py`, whose text
# must not change: Prefect keys the agent's flows by that file (see `PrefectAgent._run_in_flow`).
_CARRIED = _CARRIED_RUN_KEYWORDS | {'compact'}


class PrefectEntryPoints(PrefectAgentBase[AgentDepsT, OutputDataT]):
    """`run` (flow `{name} Run`), `run_sync` (flow `{name} Sync Run`), `iter` (tasks inside the caller's flow).

    Both flows are subflows when called inside a flow. Inside a flow, parallel tool calls run in pydantic-ai's
    `'parallel_ordered_events'` mode: started together, their events reported in call order, the same on every run.
    A `model` given at run time must be a [`PrefectModel`][durable_prefect.PrefectModel]; run-time `toolsets` are
    wrapped for Prefect too. `run_stream` and `run_stream_events` work outside a flow only: a flow cannot stream to
    its caller. On pydantic-ai 2.x, `conversation`, `run_id` and `compact` are carried into the flow run, while
    `cancellation_token`, `timeout` and `workspace` are refused there with a `UserError` that says why.
    """

    def _refuse_run_keywords(self, arguments: RunArguments[AgentDepsT], entry_point: str) -> None:
        arguments.refuse_run_keywords(
            carried=_CARRIED,
            refused=_REFUSED_RUN_KEYWORDS,
            where=f'`{entry_point}()` of the PrefectAgent {self._name!r}, whose runs are durable Prefect flow runs',
        )

    async def _run_impl(self, arguments: RunArguments[AgentDepsT]) -> AgentRunResult[Any]:
        return await self._run_in_flow(self._durable_run_arguments(arguments, 'run'))

    def _run_sync_impl(self, arguments: RunArguments[AgentDepsT]) -> AgentRunResult[Any]:
        return self._run_sync_in_flow(self._durable_run_arguments(arguments, 'run_sync'))

    @asynccontextmanager
    async def _iter_impl(self, arguments: RunArguments[AgentDepsT]) -> AsyncGenerator[AgentRun[AgentDepsT, Any]]:
        prefect_model = self._check_run_model(arguments.model)
        in_flow = FlowRunContext.get() is not None
        if in_flow:
            self._refuse_run_keywords(arguments, 'iter')
        with (
            self._durable_overrides(prefect_model, arguments.toolsets),
            ordered_tool_call_events() if in_flow else nullcontext(),
            # The run's task keys serialize each message once (`_key_text.py`).
            message_key_cache(),
        ):
            async with super()._iter_impl(dataclasses.replace(arguments, model=None, toolsets=None)) as agent_run:
                yield agent_run

    @asynccontextmanager
    async def _run_stream_impl(
        self, arguments: RunArguments[AgentDepsT]
    ) -> AsyncGenerator[StreamedRunResult[AgentDepsT, Any]]:
        self._refuse_in_flow('run_stream')
        async with super()._run_stream_impl(arguments) as streamed:
            yield streamed

    def _run_stream_events_impl(self, arguments: RunArguments[AgentDepsT]) -> Any:
        self._refuse_in_flow('run_stream_events')
        return super()._run_stream_events_impl(arguments)
