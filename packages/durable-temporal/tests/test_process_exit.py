"""Processes that run an agent workflow with `LogfirePlugin` and exit: every one exits with code 0.

Each exit raced Temporal's Rust threads against interpreter finalization and now and then aborted with
`PyGILState_Release: thread state ... must be current when releasing` (exit code 134; see
`durable_temporal._exit_barrier`). The race is rare, so the test runs many processes: `DURABLE_TEMPORAL_EXIT_RUNS`
of them (4 by default, to keep the suite short; `just exit-test 100` runs 100).
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio.to_thread
import pytest
from temporalio.testing import WorkflowEnvironment

pytestmark = pytest.mark.anyio

RUNS = int(os.environ.get('DURABLE_TEMPORAL_EXIT_RUNS', '4'))
PARALLEL = 2
PROCESS_TIMEOUT = 600
"""Seconds one process may take: its imports alone take several seconds of CPU on a loaded 2-core machine."""


def _run_program(address: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(Path(__file__).parent / 'exit_program.py'), address],
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        check=False,
    )


def _run_programs(address: str) -> list[subprocess.CompletedProcess[str]]:
    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(_run_program, [address] * RUNS))


@pytest.mark.timeout(PROCESS_TIMEOUT * (RUNS // PARALLEL + 1))
async def test_processes_with_logfire_plugin_exit_with_code_zero(env: WorkflowEnvironment) -> None:
    address = env.client.service_client.config.target_host
    results = await anyio.to_thread.run_sync(_run_programs, address)

    failed = [result for result in results if result.returncode != 0]
    assert not failed, f'{len(failed)} of {RUNS} processes exited with codes {[r.returncode for r in failed]}; ' + (
        f'the first one printed:\n{failed[0].stdout}\n{failed[0].stderr[-3000:]}' if failed else ''
    )
    assert all('Mexico City' in result.stdout for result in results)
