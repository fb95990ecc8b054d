"""Runs started on pydantic-ai 1.107 finish after the worker is upgraded (to 2.x in the `pai2` matrix cell).

The fixtures were recorded on 1.107 by `record_upgrade_fixtures.py` (see `harness/upgrade.py`): a crash-agent run
killed after model 1, tools a and b and model 2 were recorded. Resumed on the installed line, only tool c and model 3
may run, and the output must be the one a run that never crashed gives. (Temporal's counterpart is in
`test_histories.py`: the 1.107 golden histories replay, and their activity payloads decode, on the installed line.)
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import fcntl
import importlib.metadata
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from harness.crash_agent import EXPECTED_OUTPUT, PHASES, read_calls
from harness.crash_run import prefect_worker_env
from harness.mcp_crash_agent import MCP_PHASES
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
    REFERENCE_LINES,
    MigrationUnit,
    ReferenceLine,
    dbos_fixture,
    dbos_recorded_version,
    dbos_reference_fixture,
    migration_agent,
    migration_output,
    prefect_fixture,
    prefect_fixture_needs,
    prefect_reference_fixture,
    prefect_reference_fixture_needs,
    prefect_reference_tag,
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


MIGRATION_UNITS: list[MigrationUnit] = ['model', 'tool', 'mcp']
T = TypeVar('T')
# What a recovery starts, by where the first process was killed (`start model-2`, `start call-c`, or the MCP crash
# agent's `start mcp-c`), when the function-tool calls of the recorded part were workflow code (the reference's layout,
# or ours with `function_tool_steps=False`): they run again, every recorded model request and MCP call is replayed
# (MCP calls are steps on both), and only the MCP call in flight runs again.
AFTER_CODE_TOOLS: dict[MigrationUnit, list[str]] = {
    'model': ['call-a', 'call-b', 'model-2', 'call-c', 'model-3'],
    'tool': ['call-a', 'call-b', 'call-c', 'model-3'],
    'mcp': ['mcp-c', 'model-3'],
}
MODEL_STEP = 'crash_agent__model.request'
TOOL_STEP = 'crash_agent__toolset__<agent>.call_tool.crunch'
MCP_MODEL_STEP, MCP_STEP = 'mcp_crash_agent__model.request', 'mcp_crash_agent__mcp_server__crashmcp'
# The MCP crash agent's steps, on the reference and on ours: the tools are listed once per run (the reference caches
# them on its wrapper, ours per run; both in a step whose record a recovery reads), each MCP call is a step.
MCP_STEPS = [f'{MCP_STEP}.get_tools', *[MCP_MODEL_STEP, f'{MCP_STEP}.call_tool'] * 2, MCP_MODEL_STEP]


def _started(log: Path) -> list[str]:
    labels = [call.label for call in read_calls(log) if call.kind == 'start']
    # call-a and call-b run in parallel: either may start first.
    return sorted(labels[:2]) + labels[2:] if labels[:2] == ['call-b', 'call-a'] else labels


def _skip_unless_readable(line: ReferenceLine, unit: MigrationUnit) -> None:
    if line == '2.78' and unit == 'mcp' and not PYDANTIC_AI_2:
        # 2.78 records an MCP call's result as its own outcome object, pickled: a class of `pydantic_ai.durable_exec`
        # 2.x that pydantic-ai 1.107 does not have (ModuleNotFoundError). Its model requests read on 1.107 (tested).
        pytest.skip('an MCP call recorded by pydantic-ai 2.78 is a 2.x class: read with pydantic-ai 2.x installed')


def _step_names(database: Path, workflow_id: str) -> list[str]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            'SELECT function_name FROM operation_outputs WHERE workflow_uuid = ? ORDER BY function_id', (workflow_id,)
        ).fetchall()
    return [str(row[0]) for row in rows]


@pytest.mark.xdist_group('dbos')
@pytest.mark.parametrize('tool_steps', [True, False], ids=['ours_default', 'ours_tool_steps_off'])
@pytest.mark.parametrize('unit', MIGRATION_UNITS)
@pytest.mark.parametrize('line', REFERENCE_LINES)
def test_dbos_run_started_on_the_reference_finishes_on_ours(
    tmp_path: Path, line: ReferenceLine, unit: MigrationUnit, tool_steps: bool
) -> None:
    # Recorded by pydantic-ai's own DBOSAgent (1.107.10, or 2.78.0's deprecated one) under DBOS's computed application
    # version (record_upgrade_fixtures).
    _skip_unless_readable(line, unit)
    database = tmp_path / 'dbos.sqlite'
    shutil.copyfile(dbos_reference_fixture(unit, line), database)
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
        agent=migration_agent(unit),
    )

    assert code == 0, result.read_text(encoding='utf-8') if result.exists() else code
    assert json.loads(result.read_text(encoding='utf-8')) == {'output': migration_output(unit)}
    # The reference ran the first tools as workflow code (not recorded, so they run again); model requests are never
    # repeated. Whatever `function_tool_steps` says, the run keeps the reference's layout where its record reached
    # past a tool call (killed in call-c) and never fails on it; new work after a shorter record follows the setting.
    # MCP calls are steps on both: ours reads the reference's records (the tool list, each call's result as the
    # reference recorded it) and runs only the MCP call in flight again.
    assert _started(log) == AFTER_CODE_TOOLS[unit]
    steps = _step_names(database, MIGRATION_WORKFLOW_ID)
    if unit == 'mcp':
        assert steps == MCP_STEPS
    elif unit == 'model' and tool_steps:
        assert steps == [MODEL_STEP, TOOL_STEP, TOOL_STEP, MODEL_STEP, TOOL_STEP, MODEL_STEP]
    else:
        assert steps == [MODEL_STEP] * 3


@pytest.mark.xdist_group('dbos')
@pytest.mark.parametrize('unit', MIGRATION_UNITS)
@pytest.mark.parametrize('line', REFERENCE_LINES)
def test_dbos_run_started_on_the_reference_finishes_on_our_capability(
    tmp_path: Path, line: ReferenceLine, unit: MigrationUnit
) -> None:
    # The same recorded runs, taken over by an agent made durable with ours' `DBOSDurability(register_legacy_workflows=
    # True)` instead of our wrapper: the capability registers the wrapper's workflow (`X.run`), so DBOS recovers the
    # run into it, and it keeps the layout the run recorded, as the wrapper does.
    _skip_unless_readable(line, unit)
    database = tmp_path / 'dbos.sqlite'
    shutil.copyfile(dbos_reference_fixture(unit, line), database)
    log, result = tmp_path / 'calls.log', tmp_path / 'result.json'

    code = run_dbos_worker(
        database,
        log,
        result,
        recover=True,
        workflow_id=MIGRATION_WORKFLOW_ID,
        wrapper='capability',
        app_version=dbos_recorded_version(database, MIGRATION_WORKFLOW_ID),
        agent=migration_agent(unit),
    )

    assert code == 0, result.read_text(encoding='utf-8') if result.exists() else code
    assert json.loads(result.read_text(encoding='utf-8')) == {'output': migration_output(unit)}
    assert _started(log) == AFTER_CODE_TOOLS[unit]
    assert _step_names(database, MIGRATION_WORKFLOW_ID) == (MCP_STEPS if unit == 'mcp' else [MODEL_STEP] * 3)


@pytest.mark.xdist_group('dbos')
@pytest.mark.parametrize('tool_steps', [True, False], ids=['ours_default', 'ours_tool_steps_off'])
@pytest.mark.parametrize('unit', MIGRATION_UNITS)
def test_dbos_run_started_on_ours_finishes_on_the_reference_only_without_tool_steps(
    tmp_path: Path, unit: MigrationUnit, tool_steps: bool
) -> None:
    # Rolling back: started on ours, killed, recovered by the reference (the installed line's) on the same version.
    database, log, result = tmp_path / 'dbos.sqlite', tmp_path / 'calls.log', tmp_path / 'result.json'
    kill_at = MIGRATION_KILL_AT[unit]
    agent = migration_agent(unit)
    started_on_ours = run_dbos_worker(
        database,
        log,
        result,
        recover=False,
        kill_at=kill_at,
        workflow_id='rollback',
        function_tool_steps=tool_steps,
        agent=agent,
    )
    assert started_on_ours == -9
    recorded = len(read_calls(log))

    code = run_dbos_worker(
        database, log, result, recover=True, workflow_id='rollback', wrapper='reference', agent=agent
    )

    again = [call.label for call in read_calls(log)[recorded:] if call.kind == 'start']
    if unit == 'mcp':
        # No function tools: the same steps on both (ours records an MCP call's result as the reference does), so the
        # reference replays every recorded one and runs only the MCP call in flight again.
        assert code == 0, result.read_text(encoding='utf-8') if result.exists() else code
        assert json.loads(result.read_text(encoding='utf-8')) == {'output': migration_output(unit)}
        assert again == AFTER_CODE_TOOLS[unit]
        assert _step_names(database, 'rollback') == MCP_STEPS
    elif tool_steps:
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


# Prefect: a flow run started on one wrapper, killed in a model request, a tool call or an MCP tool call, re-run on the
# other (or on the same one: the baselines). Started on the reference and finished on ours: the runs of the committed
# fixture `prefect-reference-1.107/`, started by pydantic-ai 1.107.10's own `PrefectAgent` (`record_upgrade_fixtures.py
# prefect-reference`), re-run on ours in every cell. The cells that finish on the reference run it live, the installed
# line's: every such cell runs in the same two worker processes (`harness/prefect_migration.py`).
LIVE_CELLS: list[tuple[Wrapper, Wrapper]] = [('ours', 'reference'), ('reference', 'reference'), ('reference', 'ours')]
ALL_CALLS: dict[MigrationUnit, list[str]] = {
    'model': ['model-1', 'call-a', 'call-b', 'model-2', 'call-c', 'model-3'],
    'tool': ['model-1', 'call-a', 'call-b', 'model-2', 'call-c', 'model-3'],
    'mcp': ['model-1', 'mcp-a', 'model-2', 'mcp-c', 'model-3'],
}
# What the first process started before the side channel killed it (in model-2, in call-c, in mcp-c).
FIRST_STARTED: dict[MigrationUnit, list[str]] = {
    'model': ALL_CALLS['model'][:4],
    'tool': ALL_CALLS['tool'][:5],
    'mcp': ALL_CALLS['mcp'][:4],
}
TOOL_TASK, MCP_TASK = 'Call Tool: crunch', 'Call MCP Tool: add'
MCP_LISTING_TASK = 'List MCP Tools: crashmcp'
"""Ours lists an MCP server's tools in a task (the 1.107 reference lists them outside any task)."""


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


def _measure_prefect_migration(prefect_home: Path, results: Path) -> dict[str, dict[str, Any]]:
    tags: dict[str, tuple[Wrapper, Wrapper, MigrationUnit]] = {
        _tag(a, b, unit): (a, b, unit) for a, b in LIVE_CELLS for unit in MIGRATION_UNITS
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
    cells = {
        tag: PrefectMigrationCell(
            json.loads((results / f'{tag}.json').read_text(encoding='utf-8')),
            [call.label for call in read_calls(results / f'{tag}.calls.jsonl') if call.kind == 'start'],
            [call.label for call in again if call.kind == 'start' and call.run == tag],
            _run_async(read_subflows, flow_runs[tag], rerun_since, len(ALL_CALLS[unit])),
            [message for message in warned if flow_runs[tag] in message],
        )
        for tag, (_, _, unit) in tags.items()
    }
    return {tag: asdict(cell) for tag, cell in cells.items()}


def _measure_prefect_reference_fixture(workdir: Path, line: ReferenceLine) -> dict[str, dict[str, Any]]:
    # In a subprocess of its own (as the upgrade fixture's resume): its Prefect server runs on a copy of the fixture.
    assert run_prefect_step('prefect-reference-migrate', prefect_reference_fixture(line), workdir) == 0
    measured: dict[str, dict[str, Any]] = json.loads((workdir / 'measured.json').read_text(encoding='utf-8'))
    return measured


def _measured_once(name: str, tmp_path_factory: pytest.TempPathFactory, measure: Callable[[Path], Any]) -> Any:
    """`measure(workdir)` once per test session, shared with every xdist worker of the session through a file."""
    run_id = os.environ.get('PYTEST_XDIST_TESTRUNUID')
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if run_id else base) / f'{name}-{run_id or "local"}.json'
    with (shared.with_suffix('.lock')).open('w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not shared.exists():
            shared.write_text(json.dumps(measure(tmp_path_factory.mktemp(name))), encoding='utf-8')
    return json.loads(shared.read_text(encoding='utf-8'))


@pytest.fixture(scope='module')
def prefect_migration(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every live cell measured once per test session: tag -> `PrefectMigrationCell` (as a dict).

    The xdist workers of a session share the measurement through a file (by the session's run id), so that the
    cells' tests cost two worker processes wherever they are scheduled.
    """

    def measure(workdir: Path) -> dict[str, dict[str, Any]]:
        return _measure_prefect_migration(request.getfixturevalue('prefect_home'), workdir)

    return _measured_once('prefect-migration', tmp_path_factory, measure)


@pytest.fixture(scope='module')
def prefect_reference_migration(tmp_path_factory: pytest.TempPathFactory) -> Callable[[ReferenceLine], dict[str, Any]]:
    """The committed fixture's runs of a line (started by that pydantic-ai's `PrefectAgent`), re-run on ours: by line,
    tag -> cell, each line measured once per test session."""

    def measured(line: ReferenceLine) -> dict[str, Any]:
        if (reason := prefect_reference_fixture_needs(line)) is not None:
            pytest.skip(reason)
        return _measured_once(
            f'prefect-reference-migration-{line}',
            tmp_path_factory,
            lambda workdir: _measure_prefect_reference_fixture(workdir, line),
        )

    return measured


def _cell(
    request: pytest.FixtureRequest,
    first: Wrapper,
    second: Wrapper,
    unit: MigrationUnit,
    *,
    fixture: ReferenceLine | None = None,
) -> PrefectMigrationCell:
    if fixture is not None:
        cells: dict[str, Any] = request.getfixturevalue('prefect_reference_migration')(fixture)
        cell = dict(cells[prefect_reference_tag(unit)])
    else:
        cells = request.getfixturevalue('prefect_migration')
        cell = dict(cells[_tag(first, second, unit)])
    subflows = [SubflowRecord(**subflow) for subflow in cell.pop('subflows')]
    measured = PrefectMigrationCell(**cell, subflows=subflows)
    # Ours says so when it leaves the reference's unfinished agent run behind (its recorded calls repeat); the
    # reference says nothing, and re-running on the same wrapper leaves nothing behind that ours would not reuse.
    if (first, second) == ('reference', 'ours'):
        [warning] = measured.warnings
        assert 'unfinished agent run' in warning
        assert 'will run again' in warning
    else:
        assert measured.warnings == []
    assert measured.result == {'output': migration_output(unit)}
    assert measured.first_started == FIRST_STARTED[unit]
    return measured


def _in_phase_order(labels: list[str]) -> list[str]:
    # Tools a and b run in parallel: either may start first.
    phases = PHASES | MCP_PHASES
    assert [phases[label] for label in labels] == sorted(phases[label] for label in labels), labels
    return sorted(labels, key=lambda label: (phases[label], label))


def _by_task(labels: list[str], unit: MigrationUnit) -> dict[str, int]:
    model_task = 'Model Request: mcp_crash' if unit == 'mcp' else 'Model Request: crash'
    counts = {
        model_task: sum(label.startswith('model') for label in labels),
        TOOL_TASK: sum(label.startswith('call') for label in labels),
        MCP_TASK: sum(label.startswith('mcp') for label in labels),
    }
    return {task: count for task, count in counts.items() if count}


REFERENCE_1107_AGAIN: dict[MigrationUnit, list[str]] = {
    'model': ['model-1', 'model-2', 'call-c', 'model-3'],
    'tool': ['model-1', 'model-2', 'call-c', 'model-3'],
    'mcp': ['model-1', 'model-2', 'mcp-c', 'model-3'],
}
"""What pydantic-ai 1.107's reference re-run on itself repeats when its subflow run is reattached (see the baseline)."""


# Started on the reference, finished on ours: ours reads a tool or MCP call's result that pydantic-ai 1.107's
# `PrefectAgent` recorded, under the key the reference itself computes for that call (its inputs, its task function's
# source, its abandoned subflow run's id: `durable_prefect/_reference_results.py`), so exactly the calls the reference
# re-run on itself reuses (the baseline below): tools a and b, MCP call a. Model requests run again (1.107's keys hold
# the run's `conversation_id`), and so does everything where the reference's own keys cannot match.
REUSED_BY_OURS: dict[MigrationUnit, list[str]] = {
    unit: [label for label in calls if label not in REFERENCE_1107_AGAIN[unit]] for unit, calls in ALL_CALLS.items()
}
"""What 1.107's reference re-run on itself does not repeat (the baseline below): exactly what ours reuses."""


def _reference_keys_match(fixture: ReferenceLine | None) -> bool:
    if PYDANTIC_AI_2 or fixture == '2.78':
        # Ours computes 1.107's keys only: with 2.x installed, live, the reference is 2.x's, whose keys project the
        # inputs otherwise (rewritten between 2.33, 2.68 and 2.78); a 1.107 fixture's keys hash 1.107's task sources
        # and run-context fields, which 2.x installed does not have; 2.78's fixture was keyed by 2.78's policy.
        return False
    if fixture is None:
        return True
    # The reference's tool-call keys pickle the tool's pydantic validator, whose bytes change with pydantic-core: a run
    # recorded under another pydantic-core matches on neither the reference nor ours (the lock's is newer than the
    # recording's; the `lowest` cell has the recording's).
    recorded = json.loads((prefect_reference_fixture(fixture) / 'run.json').read_text(encoding='utf-8'))
    return importlib.metadata.version('pydantic-core') == recorded['pydantic_core_version']


@pytest.mark.xdist_group('prefect')
@pytest.mark.parametrize('unit', MIGRATION_UNITS)
@pytest.mark.parametrize('fixture', ['1.107', '2.78', None], ids=['fixture-1.107.10', 'fixture-2.78.0', 'live'])
def test_prefect_run_started_on_the_reference_finishes_on_ours(
    request: pytest.FixtureRequest, fixture: ReferenceLine | None, unit: MigrationUnit
) -> None:
    # Prefect reattaches a crashed subflow by the task key of its flow function, a hash of that function's code: ours is
    # other code, so it gets a subflow run of its own, and the reference's is left Running (nobody ends it). Its tasks
    # look up the reference's records themselves: a reused call is a task of ours that ran and returned the recorded
    # result, without calling the tool (the side channel sees no start).
    cell = _cell(request, 'reference', 'ours', unit, fixture=fixture)
    reused = REUSED_BY_OURS[unit] if _reference_keys_match(fixture) else []
    assert _in_phase_order(cell.started_again) == [label for label in ALL_CALLS[unit] if label not in reused]
    [abandoned, finished] = cell.subflows
    assert abandoned == SubflowRecord('Running')
    executed = _by_task(ALL_CALLS[unit], unit)
    if unit == 'mcp':
        executed[MCP_LISTING_TASK] = 3  # before each model request (a task keyed by the run step, cached on a re-run)
    assert finished == SubflowRecord('Completed', executed=executed, cached={})


@pytest.mark.xdist_group('prefect')
@pytest.mark.parametrize('unit', MIGRATION_UNITS)
def test_prefect_run_started_on_ours_repeats_every_call_on_the_reference(
    request: pytest.FixtureRequest, unit: MigrationUnit
) -> None:
    # As above the other way round, but the reference does not look for ours' records: ours' keys hash ours' task
    # sources and subflow run, which the reference cannot know, so every call runs again (no setting of either package
    # changes this: drain runs started on ours before rolling back). The same holds for a kill in an MCP tool call.
    cell = _cell(request, 'ours', 'reference', unit)
    assert _in_phase_order(cell.started_again) == ALL_CALLS[unit]
    [abandoned, finished] = cell.subflows
    assert abandoned == SubflowRecord('Running')
    assert finished == SubflowRecord('Completed', executed=_by_task(ALL_CALLS[unit], unit), cached={})


# What the reference's own re-run repeats (the baseline: the calls whose recorded results a re-run could reuse at all),
# when Prefect reattaches the crashed subflow run (it does since PrefectHQ/prefect#21950; 3.4 creates a new one, whose
# new run id changes every key of the reference: it repeats every call). 1.107's keys of model requests hold the run's
# `conversation_id`, new on every run: its model requests all run again and only the tool calls it recorded are cache
# hits. 2.x's keys are stable: only the call in flight runs again.
REFERENCE_AGAIN: dict[MigrationUnit, list[str]] = (
    {'model': ['model-2', 'call-c', 'model-3'], 'tool': ['call-c', 'model-3'], 'mcp': ['mcp-c', 'model-3']}
    if PYDANTIC_AI_2
    else REFERENCE_1107_AGAIN
)


@pytest.mark.xdist_group('prefect')
@pytest.mark.parametrize('unit', MIGRATION_UNITS)
def test_prefect_run_started_on_the_reference_reuses_its_stable_keys_on_the_reference(
    request: pytest.FixtureRequest, unit: MigrationUnit
) -> None:
    # The baseline: re-run on the reference itself, every call whose key is stable is a cache hit if the subflow run is
    # reattached; ours, on the same runs, reuses the same tool calls (above).
    from packaging.version import Version

    cell = _cell(request, 'reference', 'reference', unit)
    reattached = len(cell.subflows) == 1
    if Version(importlib.metadata.version('prefect')) >= Version('3.9'):
        assert reattached, cell.subflows
    again = REFERENCE_AGAIN[unit] if reattached else ALL_CALLS[unit]
    assert _in_phase_order(cell.started_again) == again
    reused = [label for label in ALL_CALLS[unit] if label not in again]
    finished = SubflowRecord('Completed', executed=_by_task(again, unit), cached=_by_task(reused, unit))
    assert cell.subflows == ([finished] if reattached else [SubflowRecord('Running'), finished])


# Temporal: a workflow started by the reference's worker (the installed line's `TemporalAgent`), killed in a model
# request, a tool call or an MCP tool call, taken over by a worker running ours (`harness/temporal_migration.py`).
# Temporal replays what the reference recorded; the activity in flight is retried on ours' worker with the inputs the
# reference scheduled. The committed 1.107 histories say the same piece by piece (`packages/durable-temporal/tests/
# test_compat_reference.py`, `test_compat_activities.py`); this is the whole move, MCP activities included.
TEMPORAL_AGAIN: dict[MigrationUnit, list[str]] = {
    'model': ['model-2', 'call-c', 'model-3'],
    'tool': ['call-c', 'model-3'],
    'mcp': ['mcp-c', 'model-3'],
}


async def _temporal_worker(
    wrapper: Wrapper, address: str, task_queue: str, workdir: Path, log: Path, kill_at: int
) -> subprocess.Popen[bytes]:
    from harness.crash_agent import KILL_AT_ENV, LOG_ENV

    ready = workdir / f'{wrapper}.ready'
    env = {**os.environ, 'PYTHONPATH': str(Path(__file__).parent), LOG_ENV: str(log), KILL_AT_ENV: str(kill_at)}
    args = ['temporal', '--address', address, '--task-queue', task_queue, '--ready', str(ready), '--migration', wrapper]
    with (workdir / f'{wrapper}.out').open('w', encoding='utf-8') as output:
        return subprocess.Popen(
            [sys.executable, '-m', 'harness.crash_worker', *args],
            env=env,
            cwd=Path(__file__).parent,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def _exit_code(process: subprocess.Popen[bytes], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while (code := process.poll()) is None:
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise TimeoutError(f'worker {process.pid} did not exit in {timeout} s')
        await asyncio.sleep(0.05)
    return code


async def _stop_worker(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):  # killed whole by `_exit_code`
            await _exit_code(process, 20)


async def _temporal_migration(workdir: Path) -> dict[str, dict[str, Any]]:
    from harness.crash_agent import CRASH_PROMPT, CrashDeps
    from harness.temporal_migration import MIGRATION_WORKFLOW_NAME
    from temporalio.client import WorkflowHandle

    from durable_temporal.testing import dev_server

    async with dev_server() as env:
        client = env.client
        address = client.service_client.config.target_host

        async def one(unit: MigrationUnit) -> dict[str, Any]:
            unit_dir, task_queue = workdir / unit, f'migration-{unit}-{uuid.uuid4().hex}'
            unit_dir.mkdir()
            log = unit_dir / 'calls.jsonl'
            handle: WorkflowHandle[Any, str] = await client.start_workflow(
                MIGRATION_WORKFLOW_NAME,
                args=[migration_agent(unit), CRASH_PROMPT, CrashDeps()],
                id=task_queue,
                task_queue=task_queue,
                result_type=str,
                task_timeout=timedelta(seconds=2),  # a workflow task lost with the killed worker is retried then
            )
            first = await _temporal_worker('reference', address, task_queue, unit_dir, log, MIGRATION_KILL_AT[unit])
            try:
                killed = await _exit_code(first, 180)
            finally:
                await _stop_worker(first)
            second = await _temporal_worker('ours', address, task_queue, unit_dir, log, 0)
            try:
                output = await asyncio.wait_for(handle.result(), 240)
            finally:
                await _stop_worker(second)
            calls = [call for call in read_calls(log) if call.kind == 'start']
            return {
                'killed': killed,
                'output': output,
                'first_started': [call.label for call in calls if call.pid == first.pid],
                'started_again': [call.label for call in calls if call.pid != first.pid],
            }

        measured = await asyncio.gather(*(one(unit) for unit in MIGRATION_UNITS))
    return dict(zip(MIGRATION_UNITS, measured, strict=True))


def _reference_temporal_import_error() -> str | None:
    # pydantic-ai 2.33's own Temporal integration does not import with temporalio >= 1.34 (its pydantic schema of
    # temporalio's `EventGroup` fails): there the reference's worker cannot start, so there is nothing to migrate from.
    # Asked in a child process, as the reference's workers run: nothing of the reference is imported in this one.
    probe = subprocess.run(
        [sys.executable, '-c', 'import pydantic_ai.durable_exec.temporal'], capture_output=True, text=True, timeout=120
    )
    if probe.returncode == 0:
        return None
    # The exception's own line (`pydantic.errors.PydanticSchemaGenerationError: ...`), not the hints after it.
    raised = [line for line in probe.stderr.splitlines() if re.match(r'[\w.]+(Error|Exception): ', line)]
    return raised[-1][:300] if raised else f'exit {probe.returncode}'


@pytest.fixture(scope='module')
def temporal_migration(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every unit's move from the reference to ours on Temporal, measured once per test session: unit -> cell."""
    error = _reference_temporal_import_error()
    if error is not None:
        pytest.skip(
            f"the installed pydantic-ai's own Temporal integration does not import with this temporalio ({error})"
        )
    return _measured_once(
        'temporal-migration', tmp_path_factory, lambda workdir: _run_async(_temporal_migration, workdir)
    )


@pytest.mark.xdist_group('temporal')
@pytest.mark.parametrize('unit', MIGRATION_UNITS)
def test_temporal_run_started_on_the_reference_finishes_on_ours(
    temporal_migration: dict[str, Any], unit: MigrationUnit
) -> None:
    cell = temporal_migration[unit]
    assert cell['killed'] == -signal.SIGKILL
    assert cell['first_started'] == FIRST_STARTED[unit]
    assert cell['output'] == migration_output(unit)
    # Only the activity in flight runs again (on ours, from the reference's inputs), then what was never started.
    assert cell['started_again'] == TEMPORAL_AGAIN[unit]
