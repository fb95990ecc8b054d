"""Kill the worker process with SIGKILL at seeded random points; a new worker must finish the run.

The run must end with the output of an uninterrupted run, and no model request or tool call that the engine had
recorded before the kill may run again (counted through the side channel, see `harness/crash_agent.py`).
"""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
from harness import engine_params
from harness.crash_run import TOTAL_EVENTS, CrashEngine, CrashResult, crash_engine, crash_many, kill_points

pytestmark = pytest.mark.anyio

SEED = 20261125
RUNS_PER_ENGINE = 10

ENGINE_VARIANTS = [
    *engine_params(),
    pytest.param('dbos-postgres', id='dbos-postgres', marks=[pytest.mark.xdist_group('dbos'), pytest.mark.postgres]),
]


def _crash_runner(variant: str, request: pytest.FixtureRequest) -> AbstractAsyncContextManager[CrashEngine]:
    if variant == 'temporal':
        return crash_engine('temporal', temporal_client=request.getfixturevalue('temporal_harness').client)
    if variant == 'prefect':
        return crash_engine('prefect', prefect_home=request.getfixturevalue('prefect_home'))
    if variant == 'dbos-postgres':
        from durable_dbos.testing import postgres_url

        server_url: str = request.getfixturevalue('postgres_server_url')

        def fresh_database(workdir: Path) -> str:
            return postgres_url(server_url, f'crash_{uuid.uuid4().hex[:12]}')

        return crash_engine('dbos', dbos_database_url=fresh_database)
    return crash_engine('dbos')


@pytest.fixture
def crash_runner(engine: str, request: pytest.FixtureRequest) -> AbstractAsyncContextManager[CrashEngine]:
    """Resolves the engine's session fixtures here, synchronously: an async fixture cannot request them."""
    return _crash_runner(engine, request)


def _describe(results: list[CrashResult]) -> str:
    return '\n'.join(
        f'kill at {r.kill_at}: killed={r.killed} output={r.output!r} repeated={r.repeated} error={r.error}'
        for r in results
    )


@pytest.mark.parametrize('engine', ENGINE_VARIANTS)
async def test_killed_worker_resumes_without_repeating_recorded_calls(
    crash_runner: AbstractAsyncContextManager[CrashEngine], tmp_path: Path
) -> None:
    points = kill_points(SEED, RUNS_PER_ENGINE)
    assert len(set(points)) == RUNS_PER_ENGINE
    assert max(points) <= TOTAL_EVENTS
    async with crash_runner as runner:
        results = await crash_many(runner, points, tmp_path)
    failed = [result for result in results if not result.ok]
    assert not failed, _describe(failed)
    # The kills landed after recorded work, so the check above had something to check.
    assert any(result.committed for result in results)
