"""Fail-over between worker processes: two workers, six runs spread over them, one worker killed with SIGKILL.

At the kill every run has recorded units (two model requests, two tools) and one tool call in flight, three runs on
each worker. Every run must end with the output of an uninterrupted run, the killed worker's runs on another
process, and no recorded unit may run again: counted from the call log the model and tools write, and from the
engine's own records (Temporal histories, DBOS steps, Prefect task-run states). See `harness/failover_run.py`.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from harness._params import skip_before_prefect
from harness.failover_agent import expected_output
from harness.failover_run import RUNS, FailoverResult, failover_dbos, failover_prefect, failover_temporal

if TYPE_CHECKING:
    from harness.temporal_engine import TemporalHarness

pytestmark = pytest.mark.anyio


def _check(result: FailoverResult, finishers: set[str]) -> None:
    summary = result.summary()
    print(summary)
    assert result.killed, summary
    # The runs were spread over both workers and the kill came while each held a call in flight.
    assert len(result.held.get('victim', [])) == 3, summary
    assert len(result.held.get('survivor', [])) == 3, summary
    assert result.outputs == {run: expected_output(run) for run in RUNS}, summary
    for run in result.victim_runs:
        assert result.finished_by[run] in finishers, summary
    # Each run had recorded four units (model 1, tools a and b, model 2) when the worker died: none ran again.
    assert all(len(result.recorded[run]) == 4 for run in RUNS), summary
    assert not any(result.repeated.values()), summary
    assert not any(result.engine_repeats.values()), summary


@pytest.mark.xdist_group('temporal')
@pytest.mark.parametrize('engine', [pytest.param('temporal', id='temporal')])
async def test_failover_temporal(engine: str, temporal_harness: TemporalHarness, tmp_path: Path) -> None:
    """Two workers on one task queue: the victim's activities time out and run again on the survivor."""
    result = await failover_temporal(temporal_harness.client, tmp_path)
    _check(result, {'survivor'})
    # The victim's held calls were retried (second attempt) on the survivor.
    assert all(result.notes['max attempt per run'][run] >= 2 for run in result.victim_runs), result.summary()


@pytest.mark.postgres
@pytest.mark.xdist_group('dbos')
@pytest.mark.parametrize('engine', [pytest.param('dbos-postgres', id='dbos-postgres')])
async def test_failover_dbos(engine: str, postgres_server_url: str, tmp_path: Path) -> None:
    """Two executors on PostgreSQL: the victim's executor ID is restarted, and recovers its pending workflows."""
    from durable_dbos.testing import postgres_url

    result = await failover_dbos(postgres_url(postgres_server_url, f'failover_{uuid.uuid4().hex[:12]}'), tmp_path)
    # The replacement's launch re-enqueues the pending workflows (DBOS recovers through its internal queue):
    # whichever live executor dequeues one first runs it, the survivor or the replacement.
    _check(result, {'survivor', 'replacement'})
    assert result.notes['steps as uninterrupted'], result.summary()


@pytest.mark.xdist_group('prefect')
@pytest.mark.parametrize('engine', [pytest.param('prefect', id='prefect')])
async def test_failover_prefect(engine: str, prefect_home: Path, tmp_path: Path) -> None:
    """Two processes serving one deployment: the zombie automation crashes the victim's runs, the survivor re-runs
    them after the operator's retry."""
    # Before PrefectHQ/prefect#18819 (in 3.4.20, not in 3.4.10), a heartbeat that arrived while a run's detection
    # window was open and already satisfied opened no new one: a run killed after such a heartbeat stayed Running
    # for good (the `lowest` cell, Prefect 3.4.3: 0 to 2 of the 3 killed runs marked Crashed in 11 minutes).
    skip_before_prefect('3.4.20', "the zombie automation's trigger misses killed runs before 3.4.20 (issue #16)")
    result = await failover_prefect(prefect_home, tmp_path)
    _check(result, {'survivor'})
    assert sorted(result.notes['crashed by the automation']) == result.victim_runs, result.summary()
