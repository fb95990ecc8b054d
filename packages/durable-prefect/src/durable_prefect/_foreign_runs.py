"""Say so when a re-run flow run leaves behind an agent run that other code started, whose recorded calls may repeat.

Prefect finds the agent's subflow of a re-run flow run by a key over the subflow function's code, and task results
by cache keys: an agent subflow started by other code (pydantic-ai's `PrefectAgent`, or another release of
durable-prefect) is not taken over, and its completed model requests run again under the new subflow; its tool calls
too, except those whose result pydantic-ai 1.107's `PrefectAgent` recorded under a key this package can compute
(`_reference_results`; docs/migration.md measures it). Repeating paid calls must not be silent: before the agent
subflow of a flow run that runs again (its `run_count` is above 1) starts, the flow run's unfinished subflows of the
same name whose flow version is not this code's are looked up, a warning names each one and how many of its calls
completed, and their ids are returned for the tool calls to look up. A first run costs nothing (no query).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
)
from prefect.client.schemas.objects import StateType
from prefect.context import FlowRunContext
from prefect.utilities.asyncutils import run_coro_as_sync
from prefect.utilities.hashing import file_hash

__all__ = (
    'AGENT_FLOW_VERSION',
    'UnfinishedForeignAgentRunWarning',
    'warn_if_foreign_agent_runs_repeat',
    'warn_if_foreign_agent_runs_repeat_sync',
)


def _agent_flow_version() -> str | None:
    # Prefect's default version of a flow: the hash of the file its function is defined in. The agent's flows are
    # closures in `_agent_base.py` (whose lines must not move: see `PrefectAgent._run_in_flow`).
    import inspect

    from ._agent_base import PrefectAgentBase

    source = inspect.getsourcefile(PrefectAgentBase)
    return file_hash(source) if source else None


AGENT_FLOW_VERSION = _agent_flow_version()
"""The flow version of the agent's `{name} Run` and `{name} Sync Run` flows (this release's code)."""


_logger = logging.getLogger(__name__)


class UnfinishedForeignAgentRunWarning(UserWarning):
    """A re-run flow run holds an unfinished agent run started by other code: its completed calls run again."""


async def _unfinished_foreign_runs(parent_id: Any, flow_name: str, version: str | None) -> list[tuple[Any, int]]:
    async with get_client() as client:
        subflows = await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id])),
        )
        found: list[tuple[Any, int]] = []
        for subflow in subflows:
            finished = subflow.state is not None and subflow.state.type == StateType.COMPLETED
            if finished or subflow.flow_version == version:
                continue  # ours: Prefect takes it over, or its tasks are served from the cache
            # Counted here rather than with a state filter, whose schema differs between Prefect releases.
            task_runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[subflow.id]))
            )
            completed = [run for run in task_runs if run.state is not None and run.state.type == StateType.COMPLETED]
            found.append((subflow, len(completed)))
        return found


def _parent_rerun() -> Any | None:
    """The current flow run, if the agent's subflow is about to start in a flow run that runs again."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None or context.flow_run.run_count <= 1:
        return None
    return context.flow_run


def _warn(parent: Any, flow_name: str, found: list[tuple[Any, int]]) -> None:
    for subflow, completed in found:
        state = subflow.state.name if subflow.state is not None else 'unknown'
        warnings.warn(
            f'Flow run {parent.id} ({parent.name!r}) runs again and holds an unfinished agent run {flow_name!r} '
            f'({subflow.id}, {state}) that other code started (flow version {subflow.flow_version!r}: '
            f"pydantic-ai's PrefectAgent, or another release of durable-prefect). Of its {completed} completed model "
            'requests and tool calls, the model requests will run again, and so will the tool calls, except those '
            "that pydantic-ai 1.107's PrefectAgent recorded under a key this package can compute (the same call in "
            'the same run; logged when reused). To avoid repeating calls, let flow runs finish before switching '
            'between pydantic-ai and durable-prefect or upgrading durable-prefect (docs/migration.md).',
            UnfinishedForeignAgentRunWarning,
            stacklevel=4,
        )


async def warn_if_foreign_agent_runs_repeat(flow_name: str, version: str | None) -> list[Any]:
    """Warn about the current flow run's unfinished subflows named `flow_name` whose flow version is not `version`.

    Args:
        flow_name: The agent's flow, about to be called as a subflow (`{name} Run`).
        version: This code's version of that flow.

    Returns:
        The ids of those subflow runs (empty on a first run).
    """
    parent = _parent_rerun()
    if parent is None:
        return []
    try:
        found = await _unfinished_foreign_runs(parent.id, flow_name, version)
    except Exception as error:  # a check that cannot run must not fail the user's flow run
        _logger.warning('Could not look for unfinished agent runs of other code in flow run %s: %r', parent.id, error)
        return []
    _warn(parent, flow_name, found)
    return [subflow.id for subflow, _ in found]


def warn_if_foreign_agent_runs_repeat_sync(flow_name: str, version: str | None) -> list[Any]:
    """`warn_if_foreign_agent_runs_repeat` for a synchronous flow (`run_sync`)."""
    parent = _parent_rerun()
    if parent is None:
        return []
    try:
        found = run_coro_as_sync(_unfinished_foreign_runs(parent.id, flow_name, version)) or []
    except Exception as error:  # as in the async form
        _logger.warning('Could not look for unfinished agent runs of other code in flow run %s: %r', parent.id, error)
        return []
    _warn(parent, flow_name, found)
    return [subflow.id for subflow, _ in found]
