"""Helpers shared by the tests: reading what Prefect recorded, through its client."""

from __future__ import annotations

import asyncio
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun, TaskRun


async def flow_runs_named(flow_name: str) -> list[FlowRun]:
    async with get_client() as client:
        return await client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])))


async def task_runs_of(flow_run_ids: list[Any], *, expected: int | None = None) -> list[TaskRun]:
    """Task runs of these flow runs, ordered by start; waits briefly for `expected` of them (events arrive async)."""
    runs: list[TaskRun] = []
    for _ in range(200):
        async with get_client() as client:
            runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=flow_run_ids)))
        # Task run states reach the API through events, asynchronously: wait for all of them to be final.
        settled = all(run.state is not None and run.state.is_final() for run in runs)
        if settled and (expected is None or len(runs) >= expected):
            break
        await asyncio.sleep(0.05)
    return sorted(runs, key=lambda run: (run.expected_start_time or run.created or 0, run.name))
