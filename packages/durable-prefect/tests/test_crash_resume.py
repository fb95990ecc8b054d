"""A flow run whose process died hard is resumed in a new process: completed model and tool tasks are not re-run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from uuid import UUID

import anyio
import pytest
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL, PREFECT_LOCAL_STORAGE_PATH

pytestmark = [pytest.mark.usefixtures('prefect_server')]

WORKER = Path(__file__).with_name('resume_worker.py')
RESULT_WRITE_WORKER = Path(__file__).with_name('result_write_worker.py')


def _run_worker(phase: str, tmp_path: Path, steps: int = 0, worker: Path = WORKER) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        'PREFECT_API_URL': str(PREFECT_API_URL.value()),
        'PREFECT_LOCAL_STORAGE_PATH': str(PREFECT_LOCAL_STORAGE_PATH.value()),
        'RESUME_TEST_LOG': str(tmp_path / 'calls.log'),
        'RESUME_TEST_FLOW_RUN': str(tmp_path / 'flow_run_id'),
        'RESUME_TEST_PHASE': phase,
        'RESUME_TEST_STEPS': str(steps),
    }
    return subprocess.run(
        [sys.executable, str(worker)], env=env, capture_output=True, text=True, timeout=120 + 10 * steps, check=False
    )


def test_resumed_flow_run_skips_completed_tasks_by_cache_key(tmp_path: Path) -> None:
    crashed = _run_worker('start', tmp_path)
    assert crashed.returncode == 17, crashed.stderr[-3000:]
    resumed = _run_worker('resume', tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.strip().splitlines()[-1] == 'did a did b'
    calls = (tmp_path / 'calls.log').read_text().split()
    assert calls == [
        'start:model-1',
        'start:tool-a',
        'start:model-2',
        'start:tool-b',  # died here
        'resume:tool-b',  # the only work that ran again ...
        'resume:model-3',  # ... and the work that never ran
    ]


def test_a_long_run_resumed_after_a_crash_reruns_only_the_call_that_died(tmp_path: Path) -> None:
    # Keys of later turns reuse the hashing of earlier ones (one conversation, growing): the resumed process, whose
    # run computes them all afresh, must find the same keys.
    steps = 30
    crashed = _run_worker('start', tmp_path, steps)
    assert crashed.returncode == 17, crashed.stderr[-3000:]
    resumed = _run_worker('resume', tmp_path, steps)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.strip().splitlines()[-1] == f'{steps} steps'
    calls = (tmp_path / 'calls.log').read_text().split()
    started = [line for index in range(1, steps + 1) for line in (f'start:model-{index}', f'start:tool-n{index}')]
    assert calls == [*started, f'resume:tool-n{steps}', f'resume:model-{steps + 1}']


async def _states_of(task_run_id: str) -> list[str]:
    """The names of the states the server holds for a task run (none if its creation never reached the server)."""
    async with get_client() as client:
        try:
            await client.read_task_run(UUID(task_run_id))
        except ObjectNotFound:
            return []
        return [state.name or '' for state in await client.read_task_run_states(UUID(task_run_id))]


def test_a_process_dying_as_a_result_is_written_leaves_no_completed_task_to_run_again(tmp_path: Path) -> None:
    # Prefect reports a task `Completed` before it writes the result under the task's cache key (on commit): a process
    # dying between the two left a task the server showed `Completed`, which the resumed flow run ran again. The
    # worker's result storage dies where the final model request's result is written (after waiting for the server to
    # show that task `Completed`, if it is already).
    crashed = _run_worker('start', tmp_path, worker=RESULT_WRITE_WORKER)
    assert crashed.returncode == 17, crashed.stderr[-3000:]
    resumed = _run_worker('resume', tmp_path, worker=RESULT_WRITE_WORKER)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.strip().splitlines()[-1] == 'did a did b'
    calls = (tmp_path / 'calls.log').read_text().split()
    # The final request ran again: its result was never written, it was in flight when the process died ...
    assert calls == [
        'start:model-1',
        'start:tool-a',
        'start:model-2',
        'start:tool-b',
        'start:model-3',
        'resume:model-3',
    ]
    # ... so the server must not show the dead process's attempt `Completed` (before the fix it did: the state was
    # sent before the result was written).
    states = anyio.run(_states_of, (tmp_path / 'died_in').read_text())
    assert 'Completed' not in states, states
