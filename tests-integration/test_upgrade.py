"""Runs started on pydantic-ai 1.107 finish after the worker is upgraded (to 2.x in the `pai2` matrix cell).

The fixtures were recorded on 1.107 by `record_upgrade_fixtures.py` (see `harness/upgrade.py`): a crash-agent run
killed after model 1, tools a and b and model 2 were recorded. Resumed on the installed line, only tool c and model 3
may run, and the output must be the one a run that never crashed gives. (Temporal's counterpart is in
`test_histories.py`: the 1.107 golden histories replay, and their activity payloads decode, on the installed line.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from harness.crash_agent import EXPECTED_OUTPUT, read_calls
from harness.upgrade import dbos_fixture, prefect_fixture, prefect_fixture_needs, run_dbos_worker, run_prefect_step


@pytest.mark.xdist_group('dbos')
def test_dbos_run_recorded_on_1107_recovers_without_repeating_calls(tmp_path: Path) -> None:
    database = tmp_path / 'dbos.sqlite'
    shutil.copyfile(dbos_fixture(), database)
    log, result = tmp_path / 'calls.log', tmp_path / 'result.json'

    assert run_dbos_worker(database, log, result, recover=True) == 0

    assert json.loads(result.read_text(encoding='utf-8')) == {'output': EXPECTED_OUTPUT}
    started = [call.label for call in read_calls(log) if call.kind == 'start']
    assert started == ['call-c', 'model-3']  # model-1, call-a, call-b and model-2 came from the 1.107 records


@pytest.mark.xdist_group('prefect')
def test_prefect_run_recorded_on_1107_resumes_from_its_cache(tmp_path: Path) -> None:
    # The flow run crashed on 1.107 is rescheduled and run again, on a server holding the 1.107 database, as a Prefect
    # worker would: the recorded calls must be served from their cached results.
    if (reason := prefect_fixture_needs()) is not None:  # the py310 cell's lock resolves an older Prefect
        pytest.skip(reason)
    assert run_prefect_step('prefect-resume', prefect_fixture(), tmp_path) == 0

    assert json.loads((tmp_path / 'result.json').read_text(encoding='utf-8')) == {'output': EXPECTED_OUTPUT}
    started = [call.label for call in read_calls(tmp_path / 'calls.log') if call.kind == 'start']
    assert started == ['call-c', 'model-3']
