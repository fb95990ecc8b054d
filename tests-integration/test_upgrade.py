"""Runs started on pydantic-ai 1.107 finish after the worker is upgraded (to 2.x in the `pai2` matrix cell).

The fixtures were recorded on 1.107 by `record_upgrade_fixtures.py` (see `harness/upgrade.py`): a crash-agent run
killed after model 1, tools a and b and model 2 were recorded. Resumed on the installed line, only tool c and model 3
may run, and the output must be the one a run that never crashed gives. (Temporal's counterpart is in
`test_histories.py`: the 1.107 golden histories replay, and their activity payloads decode, on the installed line.)
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from harness.crash_agent import EXPECTED_OUTPUT, read_calls
from harness.upgrade import (
    MIGRATION_KILL_AT,
    MIGRATION_WORKFLOW_ID,
    MigrationUnit,
    dbos_fixture,
    dbos_recorded_version,
    dbos_reference_fixture,
    prefect_fixture,
    prefect_fixture_needs,
    run_dbos_worker,
    run_prefect_step,
)


@pytest.mark.xdist_group('dbos')
def test_dbos_run_recorded_on_1107_recovers_without_repeating_calls(tmp_path: Path) -> None:
    database = tmp_path / 'dbos.sqlite'
    shutil.copyfile(dbos_fixture(), database)
    log, result = tmp_path / 'calls.log', tmp_path / 'result.json'

    assert run_dbos_worker(database, log, result, recover=True) == 0

    assert json.loads(result.read_text(encoding='utf-8')) == {'output': EXPECTED_OUTPUT}
    started = [call.label for call in read_calls(log) if call.kind == 'start']
    assert started == ['call-c', 'model-3']  # model-1, call-a, call-b and model-2 came from the 1.107 records


MIGRATION_UNITS: list[MigrationUnit] = ['model', 'tool']
# What a recovery starts, by where the first process was killed (`start model-2` or `start call-c`), when the tool
# calls of the recorded part were workflow code (the reference's layout, or ours with `function_tool_steps=False`):
# they run again, every recorded model request is replayed.
AFTER_CODE_TOOLS: dict[MigrationUnit, list[str]] = {
    'model': ['call-a', 'call-b', 'model-2', 'call-c', 'model-3'],
    'tool': ['call-a', 'call-b', 'call-c', 'model-3'],
}
MODEL_STEP = 'crash_agent__model.request'
TOOL_STEP = 'crash_agent__toolset__<agent>.call_tool.crunch'


def _started(log: Path) -> list[str]:
    labels = [call.label for call in read_calls(log) if call.kind == 'start']
    # call-a and call-b run in parallel: either may start first.
    return sorted(labels[:2]) + labels[2:] if labels[:2] == ['call-b', 'call-a'] else labels


def _step_names(database: Path, workflow_id: str) -> list[str]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            'SELECT function_name FROM operation_outputs WHERE workflow_uuid = ? ORDER BY function_id', (workflow_id,)
        ).fetchall()
    return [str(row[0]) for row in rows]


@pytest.mark.xdist_group('dbos')
@pytest.mark.parametrize('tool_steps', [True, False], ids=['ours_default', 'ours_tool_steps_off'])
@pytest.mark.parametrize('unit', MIGRATION_UNITS)
def test_dbos_run_started_on_the_reference_finishes_on_ours(
    tmp_path: Path, unit: MigrationUnit, tool_steps: bool
) -> None:
    # Recorded by pydantic-ai 1.107's own DBOSAgent under DBOS's computed application version (record_upgrade_fixtures).
    database = tmp_path / 'dbos.sqlite'
    shutil.copyfile(dbos_reference_fixture(unit), database)
    log, result = tmp_path / 'calls.log', tmp_path / 'result.json'
    # Ours computes another version: the setting its launch warning names (the recorded version) recovers the run.
    version = dbos_recorded_version(database, MIGRATION_WORKFLOW_ID)

    code = run_dbos_worker(
        database,
        log,
        result,
        recover=True,
        workflow_id=MIGRATION_WORKFLOW_ID,
        function_tool_steps=tool_steps,
        app_version=version,
    )

    assert code == 0, result.read_text(encoding='utf-8') if result.exists() else code
    assert json.loads(result.read_text(encoding='utf-8')) == {'output': EXPECTED_OUTPUT}
    # The reference ran the first tools as workflow code (not recorded, so they run again); model requests are never
    # repeated. Whatever `function_tool_steps` says, the run keeps the reference's layout where its record reached
    # past a tool call (killed in call-c) and never fails on it; new work after a shorter record follows the setting.
    assert _started(log) == AFTER_CODE_TOOLS[unit]
    steps = _step_names(database, MIGRATION_WORKFLOW_ID)
    if unit == 'model' and tool_steps:
        assert steps == [MODEL_STEP, TOOL_STEP, TOOL_STEP, MODEL_STEP, TOOL_STEP, MODEL_STEP]
    else:
        assert steps == [MODEL_STEP] * 3


@pytest.mark.xdist_group('dbos')
@pytest.mark.parametrize('tool_steps', [True, False], ids=['ours_default', 'ours_tool_steps_off'])
@pytest.mark.parametrize('unit', MIGRATION_UNITS)
def test_dbos_run_started_on_ours_finishes_on_the_reference_only_without_tool_steps(
    tmp_path: Path, unit: MigrationUnit, tool_steps: bool
) -> None:
    # Rolling back: started on ours, killed, recovered by the reference (the installed line's) on the same version.
    database, log, result = tmp_path / 'dbos.sqlite', tmp_path / 'calls.log', tmp_path / 'result.json'
    kill_at = MIGRATION_KILL_AT[unit]
    started_on_ours = run_dbos_worker(
        database, log, result, recover=False, kill_at=kill_at, workflow_id='rollback', function_tool_steps=tool_steps
    )
    assert started_on_ours == -9
    recorded = len(read_calls(log))

    code = run_dbos_worker(database, log, result, recover=True, workflow_id='rollback', wrapper='reference')

    again = [call.label for call in read_calls(log)[recorded:] if call.kind == 'start']
    if tool_steps:
        # The reference runs tool calls as workflow code, so it cannot replay ours' tool steps: it makes calls a and
        # b again, then meets our tool step where it expects model request 2, and fails the run for good. Drain such
        # runs on ours (or start them with `function_tool_steps=False`) before rolling back; the docs say so.
        assert code == 1
        error = json.loads(result.read_text(encoding='utf-8'))['error']
        assert error.startswith('DBOSUnexpectedStepError'), error
        assert sorted(again) == ['call-a', 'call-b']
    else:
        assert code == 0, result.read_text(encoding='utf-8') if result.exists() else code
        assert json.loads(result.read_text(encoding='utf-8')) == {'output': EXPECTED_OUTPUT}
        assert sorted(again[:2]) == ['call-a', 'call-b']
        assert again[2:] == AFTER_CODE_TOOLS[unit][2:]


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
