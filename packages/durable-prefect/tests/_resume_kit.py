"""What the crash-resume worker processes share: the call log, the parent flow, and the resume of its flow run.

A worker runs as `python <worker>.py` with `RESUME_TEST_PHASE` `start` (run the parent flow, which dies hard
somewhere) or `resume` (reschedule the flow run the dead process left `Running` and run it again, printing the
output). The parent flow writes its flow run id to `RESUME_TEST_FLOW_RUN` for the `resume` phase.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from uuid import UUID

import prefect.settings
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.flow_engine import run_flow
from prefect.settings import temporary_settings
from prefect.states import Pending

LOG = Path(os.environ['RESUME_TEST_LOG'])
PHASE = os.environ['RESUME_TEST_PHASE']


def log(line: str) -> None:
    """Append `<phase>:<line>` to the call log (the test reads which calls ran in which process)."""
    with LOG.open('a') as file:
        file.write(f'{PHASE}:{line}\n')


def run_phase(flow_name: str, run_agent: Callable[[], Awaitable[str]]) -> None:
    """Run this process's phase with a parent flow named `flow_name` whose body is `run_agent()`."""

    @flow(name=flow_name)
    async def parent() -> str:
        flow_run = FlowRunContext.get()
        assert flow_run is not None
        assert flow_run.flow_run is not None
        Path(os.environ['RESUME_TEST_FLOW_RUN']).write_text(str(flow_run.flow_run.id))
        return await run_agent()

    async def resume(flow_run_id: UUID) -> str:
        async with get_client() as client:
            # The dead process left the flow run 'Running'; an operator (or a worker) reschedules it.
            await client.set_flow_run_state(flow_run_id, Pending(), force=True)
            flow_run = await client.read_flow_run(flow_run_id)
        return await run_flow(parent, flow_run=flow_run)  # pyright: ignore[reportReturnType,reportGeneralTypeIssues,reportUnknownVariableType]

    heartbeat = getattr(prefect.settings, 'PREFECT_FLOWS_HEARTBEAT_FREQUENCY', None)  # Prefect 3.6+ only
    with temporary_settings({heartbeat: None} if heartbeat is not None else {}):
        if PHASE == 'start':
            asyncio.run(parent())
            sys.exit(0)
        print(asyncio.run(resume(UUID(Path(os.environ['RESUME_TEST_FLOW_RUN']).read_text()))))
