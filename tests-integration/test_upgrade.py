"""Runs started on pydantic-ai 1.107 finish after the worker is upgraded (to 2.x in the `pai2` matrix cell).

The fixtures were recorded on 1.107 by `record_upgrade_fixtures.py` (see `harness/upgrade.py`): a crash-agent run
killed after model 1, tools a and b and model 2 were recorded. Resumed on the installed line, only tool c and model 3
may run, and the output must be the one a run that never crashed gives. (Temporal's counterpart is in
`test_histories.py`: the 1.107 golden histories replay, and their activity payloads decode, on the installed line.)
"""

from __future__ import annotations

import asyncio
import contextvars
import fcntl
import importlib.metadata
import json
import os
import shutil
import signal
import sqlite3
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from harness.crash_agent import EXPECTED_OUTPUT, PHASES, read_calls
from harness.crash_run import prefect_worker_env
from harness.prefect_migration import (
    SubflowRecord,
    Wrapper,
    create_migration_runs,
    read_subflows,
    run_migration_step,
)
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

from durable_kernel import PYDANTIC_AI_2


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
T = TypeVar('T')
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


# Prefect: a flow run started on one wrapper, killed in a model request or a tool call, re-run on the other (or on the
# same one: the baselines). Every cell runs in the same two worker processes (`harness/prefect_migration.py`).
MIGRATION_CELLS: list[tuple[Wrapper, Wrapper]] = [
    ('reference', 'ours'),
    ('ours', 'reference'),
    ('reference', 'reference'),
]
ALL_CALLS = ['model-1', 'call-a', 'call-b', 'model-2', 'call-c', 'model-3']
MODEL_TASK, TOOL_TASK = 'Model Request: crash', 'Call Tool: crunch'


@dataclass
class PrefectMigrationCell:
    """What one cell's re-run did: its output (or error), the calls each attempt started, what Prefect recorded."""

    result: dict[str, str]
    first_started: list[str]
    started_again: list[str]
    subflows: list[SubflowRecord]
    warnings: list[str]
    """Ours' `UnfinishedForeignAgentRunWarning`s about this cell's flow run."""


def _tag(first: Wrapper, second: Wrapper, unit: MigrationUnit) -> str:
    return f'{first}-to-{second}-{unit}'


def _run_async(function: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    # In a thread of its own: the session's async fixtures (Temporal's) may hold an event loop in this one. The copied
    # context carries the Prefect settings (the session server's API URL) there.
    context = contextvars.copy_context()
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(context.run, lambda: asyncio.run(function(*args))).result()


def _measure_prefect_migration(prefect_home: Path, results: Path) -> dict[str, PrefectMigrationCell]:
    tags: dict[str, tuple[Wrapper, Wrapper, MigrationUnit]] = {
        _tag(a, b, unit): (a, b, unit) for a, b in MIGRATION_CELLS for unit in MIGRATION_UNITS
    }
    flow_runs = _run_async(create_migration_runs, list(tags))
    env = prefect_worker_env(prefect_home)
    kill = {tag: f'{first}:{flow_runs[tag]}:{MIGRATION_KILL_AT[unit]}' for tag, (first, _, unit) in tags.items()}
    assert run_migration_step('kill', kill, results, env) == 0, (results / 'kill.out').read_text(encoding='utf-8')
    killed = json.loads((results / 'kill.json').read_text(encoding='utf-8'))
    assert killed == dict.fromkeys(tags, -signal.SIGKILL), (results / 'kill.out').read_text(encoding='utf-8')
    recover = {tag: f'{second}:{flow_runs[tag]}' for tag, (_, second, _) in tags.items()}
    rerun_since = time.time()
    code = run_migration_step('recover', recover, results, env)
    assert code == 0, (results / 'recover.out').read_text(encoding='utf-8')
    again = read_calls(results / 'recover.calls.jsonl')
    warned = json.loads((results / 'recover.warnings.json').read_text(encoding='utf-8'))
    return {
        tag: PrefectMigrationCell(
            json.loads((results / f'{tag}.json').read_text(encoding='utf-8')),
            [call.label for call in read_calls(results / f'{tag}.calls.jsonl') if call.kind == 'start'],
            [call.label for call in again if call.kind == 'start' and call.run == tag],
            _run_async(read_subflows, flow_runs[tag], rerun_since, len(ALL_CALLS)),
            [message for message in warned if flow_runs[tag] in message],
        )
        for tag in tags
    }


@pytest.fixture(scope='module')
def prefect_migration(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every cell measured once per test session: tag -> `PrefectMigrationCell` (as a dict).

    The xdist workers of a session share the measurement through a file (by the session's run id), so that the
    cells' tests cost two worker processes wherever they are scheduled.
    """
    run_id = os.environ.get('PYTEST_XDIST_TESTRUNUID')
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if run_id else base) / f'prefect-migration-{run_id or "local"}.json'
    with (shared.with_suffix('.lock')).open('w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not shared.exists():
            prefect_home: Path = request.getfixturevalue('prefect_home')
            cells = _measure_prefect_migration(prefect_home, tmp_path_factory.mktemp('prefect-migration'))
            shared.write_text(json.dumps({tag: asdict(cell) for tag, cell in cells.items()}), encoding='utf-8')
    return json.loads(shared.read_text(encoding='utf-8'))


def _cell(cells: dict[str, Any], first: Wrapper, second: Wrapper, unit: MigrationUnit) -> PrefectMigrationCell:
    cell = cells[_tag(first, second, unit)]
    subflows = [SubflowRecord(**subflow) for subflow in cell.pop('subflows')]
    cell = PrefectMigrationCell(**cell, subflows=subflows)
    # Ours says so when it leaves the reference's unfinished agent run behind (its recorded calls repeat); the
    # reference says nothing, and re-running on the same wrapper leaves nothing behind that ours would not reuse.
    if (first, second) == ('reference', 'ours'):
        [warning] = cell.warnings
        assert 'unfinished agent run' in warning
        assert 'will run again' in warning
    elif (first, second) != ('reference', 'ours'):
        assert cell.warnings == []
    assert cell.result == {'output': EXPECTED_OUTPUT}
    assert cell.first_started == ALL_CALLS[: 4 if unit == 'model' else 5]  # killed in model-2 or in call-c
    return cell


def _in_phase_order(labels: list[str]) -> list[str]:
    # Tools a and b run in parallel: either may start first.
    assert [PHASES[label] for label in labels] == sorted(PHASES[label] for label in labels), labels
    return sorted(labels, key=lambda label: (PHASES[label], label))


@pytest.mark.xdist_group('prefect')
@pytest.mark.parametrize('unit', MIGRATION_UNITS)
@pytest.mark.parametrize(
    ('first', 'second'), [('reference', 'ours'), ('ours', 'reference')], ids=['reference-to-ours', 'ours-to-reference']
)
def test_prefect_run_moved_between_the_reference_and_ours_repeats_every_call(
    prefect_migration: dict[str, Any], first: Wrapper, second: Wrapper, unit: MigrationUnit
) -> None:
    # Prefect reattaches a crashed subflow by the task key of its flow function, a hash of that function's code: the
    # other wrapper is other code, so it gets a subflow run of its own, and the first one is left Running (nobody ends
    # it). The reference's task keys hash its own task source and subflow run id: ours cannot compute them without the
    # reference's code, and the reference cannot compute ours, so nothing is read from the other's cache (not even
    # tools a and b, which the reference re-run on itself reuses). No setting of either package changes this: drain
    # runs before switching, either way.
    cell = _cell(prefect_migration, first, second, unit)
    assert _in_phase_order(cell.started_again) == ALL_CALLS
    [abandoned, finished] = cell.subflows
    assert abandoned == SubflowRecord('Running')
    assert finished == SubflowRecord('Completed', executed={MODEL_TASK: 3, TOOL_TASK: 3}, cached={})


# What the reference's own re-run repeats (the baseline: the calls whose recorded results a re-run could reuse at all),
# when Prefect reattaches the crashed subflow run (it does since PrefectHQ/prefect#21950; 3.4 creates a new one, whose
# new run id changes every key of the reference: it repeats every call). 1.107's keys of model requests hold the run's
# `conversation_id`, new on every run: its model requests all run again and only the tool calls it recorded are cache
# hits. 2.x's keys are stable: only the call in flight runs again.
REFERENCE_AGAIN: dict[MigrationUnit, list[str]] = (
    {'model': ['model-2', 'call-c', 'model-3'], 'tool': ['call-c', 'model-3']}
    if PYDANTIC_AI_2
    else {'model': ['model-1', 'model-2', 'call-c', 'model-3'], 'tool': ['model-1', 'model-2', 'call-c', 'model-3']}
)


@pytest.mark.xdist_group('prefect')
@pytest.mark.parametrize('unit', MIGRATION_UNITS)
def test_prefect_run_started_on_the_reference_reuses_its_stable_keys_on_the_reference(
    prefect_migration: dict[str, Any], unit: MigrationUnit
) -> None:
    # The baseline: re-run on the reference itself, every call whose key is stable is a cache hit if the subflow run is
    # reattached; ours, on the same runs, reused none of them.
    from packaging.version import Version

    cell = _cell(prefect_migration, 'reference', 'reference', unit)
    reattached = len(cell.subflows) == 1
    if Version(importlib.metadata.version('prefect')) >= Version('3.9'):
        assert reattached, cell.subflows
    again = REFERENCE_AGAIN[unit] if reattached else ALL_CALLS
    assert _in_phase_order(cell.started_again) == again
    reused = [label for label in ALL_CALLS if label not in again]
    finished = SubflowRecord('Completed', executed=_by_task(again), cached=_by_task(reused))
    assert cell.subflows == ([finished] if reattached else [SubflowRecord('Running'), finished])


def _by_task(labels: list[str]) -> dict[str, int]:
    models = sum(label.startswith('model') for label in labels)
    counts = {MODEL_TASK: models, TOOL_TASK: len(labels) - models}
    return {task: count for task, count in counts.items() if count}
