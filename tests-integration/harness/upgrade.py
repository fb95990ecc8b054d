"""Runs recorded on pydantic-ai 1.107 and finished by the installed line: the fixtures and how to make and resume them.

A user upgrades pydantic-ai (1.107 -> 2.x) while agent runs are in flight. The crash agent (`crash_agent.py`) is
killed by its side channel at `start call-c` (line 9: model 1, tools a and b and model 2 are recorded), and what the
engine had stored at that moment is committed under `histories/upgrade/`:

- DBOS: the SQLite system database (`dbos-1.107.sqlite`), its write-ahead log folded in. Beside it, the migration
  fixtures `dbos-reference-1.107-{model,tool}.sqlite`: the same run started by pydantic-ai 1.107's own `DBOSAgent`
  (the reference, tool calls as workflow code) under DBOS's computed application version, killed in model request 2
  (line 7) or in tool call c (line 9), and `dbos-reference-1.107-mcp.sqlite`, the MCP crash agent's run
  (`mcp_crash_agent.py`) killed in its second MCP call (line 7); `test_upgrade.py` finishes them on ours.
- Prefect: the server's SQLite database and the result storage (`prefect-1.107/`): the flow run of the crash flow
  (its id in `run.json`), its subflow and task runs, and the cached results of the recorded calls. Resuming it is
  what a Prefect worker does with a crashed flow run: reschedule it and run it again; the calls recorded on 1.107 must
  then be served from their cache, which holds only if the cache keys are the same on the installed line.
- Prefect, the migration fixture (`prefect-reference-1.107/`): one flow run per kind of unit, started by pydantic-ai
  1.107.10's own `PrefectAgent` with `prefect_migration.py`'s flows and killed in that unit (their ids and what each
  started in `run.json`). Recorded on the lowest supported Prefect (3.4.3, the `lowest` cell's venv: `.venvs/lowest/
  bin/python record_upgrade_fixtures.py prefect-reference`), whose database every later Prefect server migrates and
  opens; `test_upgrade.py` re-runs them on ours in every cell (`prefect-reference-migrate`).

The Prefect steps run in a subprocess of their own (`python -m harness.upgrade prefect-record|prefect-resume ...`):
they start a Prefect server on a database of their choosing, which must not meet the test process's own server.

`record_upgrade_fixtures.py` makes them (on the lock, pydantic-ai 1.107); `test_upgrade.py` resumes them on whatever
line is installed and checks that nothing recorded runs again.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

__all__ = (
    'KILL_AT',
    'MIGRATION_KILL_AT',
    'MIGRATION_WORKFLOW_ID',
    'MigrationUnit',
    'UPGRADE_DIR',
    'UPGRADE_WORKFLOW_ID',
    'dbos_fixture',
    'dbos_recorded_version',
    'REFERENCE_LINES',
    'ReferenceLine',
    'dbos_reference_fixture',
    'installed_reference_line',
    'fold_wal',
    'prefect_fixture',
    'prefect_fixture_needs',
    'prefect_reference_fixture',
    'prefect_reference_fixture_needs',
    'prefect_reference_tag',
    'migration_agent',
    'migration_output',
    'run_dbos_worker',
    'run_prefect_step',
)

HERE = Path(__file__).resolve().parent
UPGRADE_DIR = HERE.parent / 'histories' / 'upgrade'
UPGRADE_WORKFLOW_ID = 'upgrade-from-1.107'
KILL_AT = 9  # `start call-c`: model-1, call-a, call-b and model-2 are recorded

MigrationUnit = Literal['model', 'tool', 'mcp']
MIGRATION_KILL_AT: dict[MigrationUnit, int] = {
    'model': 7,  # `start model-2`: killed in a model request (after the first tool calls)
    'tool': 9,  # `start call-c`: killed in a tool call (after model-2)
    'mcp': 7,  # the MCP crash agent's `start mcp-c`: killed in an MCP tool call (after model-1, mcp-a and model-2)
}
MIGRATION_WORKFLOW_ID = 'migration-from-reference-1.107'


def migration_agent(unit: MigrationUnit) -> Literal['crash', 'mcp']:
    """The agent a migration run killed in `unit` runs: the MCP crash agent for a kill in an MCP unit."""
    return 'mcp' if unit == 'mcp' else 'crash'


def migration_output(unit: MigrationUnit) -> str:
    """The output of a migration run killed in `unit`, once finished: what a run that never crashed gives."""
    from .crash_agent import EXPECTED_OUTPUT
    from .mcp_crash_agent import MCP_EXPECTED_OUTPUT

    return MCP_EXPECTED_OUTPUT if unit == 'mcp' else EXPECTED_OUTPUT


def dbos_fixture() -> Path:
    """The committed DBOS system database of a crash run recorded on pydantic-ai 1.107."""
    return UPGRADE_DIR / 'dbos-1.107.sqlite'


def prefect_fixture_needs() -> str | None:
    """Why the Prefect fixture cannot be resumed here, or `None`: a Prefect server cannot open a newer one's database."""
    return _prefect_version_needs(prefect_fixture())


def _prefect_version_needs(fixture: Path) -> str | None:
    from packaging.version import Version

    recorded = json.loads((fixture / 'run.json').read_text(encoding='utf-8'))['prefect_version']
    installed = importlib.metadata.version('prefect')
    if Version(installed) < Version(recorded):
        return f'the fixture database was written by Prefect {recorded}; Prefect {installed} cannot open it'
    return None


def prefect_fixture() -> Path:
    """The committed Prefect server database and result storage of a crash run recorded on pydantic-ai 1.107."""
    return UPGRADE_DIR / 'prefect-1.107'


def _run(args: list[str], env: dict[str, str], timeout: float = 240) -> int:
    # A session of its own, killed whole on a timeout: a Prefect step's server must not outlive it.
    process = subprocess.Popen(args, env=env, cwd=HERE.parent, start_new_session=True)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise


def _crash_worker(engine_args: list[str], log: Path, kill_at: int, env: dict[str, str] | None = None) -> int:
    full_env = {
        **os.environ,
        **(env or {}),
        'PYTHONPATH': str(HERE.parent),
        'DURABLE_CRASH_LOG': str(log),
        'DURABLE_CRASH_KILL_AT': str(kill_at),
    }
    return _run([sys.executable, '-m', 'harness.crash_worker', *engine_args], full_env)


def run_dbos_worker(
    database: Path,
    log: Path,
    result: Path,
    *,
    recover: bool,
    kill_at: int = 0,
    workflow_id: str = UPGRADE_WORKFLOW_ID,
    wrapper: Literal['ours', 'reference', 'capability'] = 'ours',
    function_tool_steps: bool = True,
    app_version: str = '',
    agent: Literal['crash', 'mcp'] = 'crash',
) -> int:
    """Run the crash agent's DBOS worker in a subprocess on `database`; its exit code (-9 when it killed itself).

    `wrapper='reference'` runs pydantic-ai's own `DBOSAgent`, `'capability'` ours' `DBOSDurability` with the wrappers'
    workflows registered (`register_legacy_workflows=True`); `app_version` is `''` (the tests' fixed version),
    `'computed'` (DBOS's hash of the workflows' source) or a version; `agent='mcp'` runs the MCP crash agent.
    """
    args = ['dbos', '--db', f'sqlite:///{database}', '--workflow-id', workflow_id, '--result', str(result)]
    args += ['--wrapper', wrapper, '--function-tool-steps', 'on' if function_tool_steps else 'off']
    args += ['--app-version', app_version] if app_version else []
    args += ['--agent', agent]
    return _crash_worker([*args, *(['--recover'] if recover else [])], log, kill_at)


ReferenceLine = Literal['1.107', '2.78']
"""The pydantic-ai line whose own wrappers recorded a migration fixture (1.107.10, or 2.78.0's deprecated wrappers)."""
REFERENCE_LINES: tuple[ReferenceLine, ...] = ('1.107', '2.78')


def installed_reference_line() -> ReferenceLine:
    """The line of the installed pydantic-ai, as the fixtures it records are named (record on 1.107.10 or 2.78.0)."""
    version = importlib.metadata.version('pydantic-ai-slim')
    line = '.'.join(version.split('.')[:2])
    if line not in REFERENCE_LINES:
        raise SystemExit(f'record the reference fixtures on pydantic-ai {" or ".join(REFERENCE_LINES)}, not {version}')
    return line


def dbos_reference_fixture(unit: MigrationUnit, line: ReferenceLine = '1.107') -> Path:
    """The DBOS system database of a crash run started by pydantic-ai's own `DBOSAgent` of `line`, killed in `unit`."""
    return UPGRADE_DIR / f'dbos-reference-{line}-{unit}.sqlite'


def dbos_recorded_version(database: Path, workflow_id: str) -> str:
    """The application version a workflow was started under (DBOS recovers it only in a process of that version)."""
    with sqlite3.connect(database) as connection:
        row = connection.execute(
            'SELECT application_version FROM workflow_status WHERE workflow_uuid = ?', (workflow_id,)
        ).fetchone()
    return str(row[0])


def run_prefect_step(step: str, fixture: Path, workdir: Path) -> int:
    """Run `prefect-record` (into `fixture`) or `prefect-resume` (from `fixture`, in `workdir`) in a subprocess."""
    env = {**os.environ, 'PYTHONPATH': str(HERE.parent)}
    return _run([sys.executable, '-m', 'harness.upgrade', step, str(fixture), str(workdir)], env, timeout=420)


@contextmanager
def _prefect_server(database: Path, home: Path) -> Generator[dict[str, str]]:
    """A Prefect server on the SQLite `database`; yields the environment of a worker that uses it and `home`."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_HOME,
        PREFECT_LOCAL_STORAGE_PATH,
        PREFECT_SERVER_DATABASE_CONNECTION_URL,
        temporary_settings,
    )

    settings: dict[Any, Any] = {
        PREFECT_HOME: home,
        PREFECT_LOCAL_STORAGE_PATH: home / 'storage',
        PREFECT_SERVER_DATABASE_CONNECTION_URL: f'sqlite+aiosqlite:///{database}',
    }
    with temporary_settings(updates=settings):
        server = SubprocessASGIServer(port=_free_port())
        server.start(timeout=180)
        try:
            with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
                yield {
                    'PREFECT_API_URL': server.api_url,
                    'PREFECT_HOME': str(home),
                    'PREFECT_LOCAL_STORAGE_PATH': str(home / 'storage'),
                }
        finally:
            server.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


async def _create_flow_run() -> str:
    from prefect.client.orchestration import get_client

    from .crash_agent import CRASH_PROMPT
    from .prefect_crash import crash_flow

    async with get_client() as client:
        flow_run = await client.create_flow_run(crash_flow, parameters={'prompt': CRASH_PROMPT, 'factor': 7})
    return str(flow_run.id)


def _prefect_record(fixture: Path, workdir: Path) -> None:
    import anyio

    database, home = workdir / 'prefect.db', workdir / 'home'
    with _prefect_server(database, home) as env:
        flow_run_id = anyio.run(_create_flow_run)
        args = ['prefect', '--flow-run-id', flow_run_id, '--result', str(workdir / 'result.json')]
        code = _crash_worker(args, workdir / 'calls.log', KILL_AT, env)
        assert code == -signal.SIGKILL, f'the worker should have killed itself at line {KILL_AT}, exit code {code}'
    fold_wal(database)
    shutil.rmtree(fixture, ignore_errors=True)
    fixture.mkdir(parents=True)
    shutil.copyfile(database, fixture / 'prefect.db')
    shutil.copytree(home / 'storage', fixture / 'storage')
    recorded = {
        'flow_run_id': flow_run_id,
        'prefect_version': importlib.metadata.version('prefect'),
        'pydantic_ai_version': importlib.metadata.version('pydantic-ai-slim'),
    }
    (fixture / 'run.json').write_text(json.dumps(recorded) + '\n', encoding='utf-8')


def _prefect_resume(fixture: Path, workdir: Path) -> None:
    database, home = workdir / 'prefect.db', workdir / 'home'
    shutil.copyfile(fixture / 'prefect.db', database)
    shutil.copytree(fixture / 'storage', home / 'storage')
    flow_run_id = json.loads((fixture / 'run.json').read_text(encoding='utf-8'))['flow_run_id']
    with _prefect_server(database, home) as env:
        args = ['prefect', '--flow-run-id', flow_run_id, '--result', str(workdir / 'result.json'), '--recover']
        code = _crash_worker(args, workdir / 'calls.log', 0, env)
        assert code == 0, f'the resumed worker failed with exit code {code}'


def prefect_reference_fixture(line: ReferenceLine = '1.107') -> Path:
    """The committed Prefect server database and result storage of flow runs started by pydantic-ai's own
    `PrefectAgent` of `line` and killed in each kind of unit (`harness/prefect_migration.py`'s migration flows)."""
    return UPGRADE_DIR / f'prefect-reference-{line}'


def prefect_reference_tag(unit: MigrationUnit) -> str:
    """The tag (prompt suffix, side-channel run) of the reference's fixture run killed in `unit`."""
    return f'reference-to-ours-{unit}'


def prefect_reference_fixture_needs(line: ReferenceLine = '1.107') -> str | None:
    """Why the Prefect migration fixture of `line` cannot be resumed here, or `None` (see `prefect_fixture_needs`)."""
    return _prefect_version_needs(prefect_reference_fixture(line))


def _prefect_reference_record(fixture: Path, workdir: Path) -> None:
    # One Prefect database holds one flow run per kind of unit, each started by the reference in a process of its own
    # and killed in that unit (the migration harness's `kill` step): what a user's crashed runs leave behind.
    import anyio

    from .crash_agent import read_calls
    from .prefect_migration import create_migration_runs, run_migration_step

    database, home, results = workdir / 'prefect.db', workdir / 'home', workdir / 'results'
    results.mkdir(parents=True)
    tags: dict[str, MigrationUnit] = {prefect_reference_tag(unit): unit for unit in MIGRATION_KILL_AT}
    with _prefect_server(database, home) as env:
        flow_runs = anyio.run(create_migration_runs, list(tags))
        kill = {tag: f'reference:{flow_runs[tag]}:{MIGRATION_KILL_AT[unit]}' for tag, unit in tags.items()}
        code = run_migration_step('kill', kill, results, env)
        output = (results / 'kill.out').read_text(encoding='utf-8')
        assert code == 0, output
        killed = json.loads((results / 'kill.json').read_text(encoding='utf-8'))
        assert killed == dict.fromkeys(tags, -signal.SIGKILL), output
    fold_wal(database)
    shutil.rmtree(fixture, ignore_errors=True)
    fixture.mkdir(parents=True)
    shutil.copyfile(database, fixture / 'prefect.db')
    shutil.copytree(home / 'storage', fixture / 'storage')
    recorded = {
        'flow_runs': flow_runs,
        'first_started': {
            tag: [call.label for call in read_calls(results / f'{tag}.calls.jsonl') if call.kind == 'start']
            for tag in tags
        },
        'prefect_version': importlib.metadata.version('prefect'),
        'pydantic_ai_version': importlib.metadata.version('pydantic-ai-slim'),
        # The reference's tool-call keys pickle the tool's pydantic validator, whose bytes change with pydantic-core.
        'pydantic_core_version': importlib.metadata.version('pydantic-core'),
    }
    (fixture / 'run.json').write_text(json.dumps(recorded, indent=1) + '\n', encoding='utf-8')


def _prefect_reference_migrate(fixture: Path, workdir: Path) -> None:
    # The user's worker after the switch: every crashed flow run of the fixture is rescheduled and re-run on ours (the
    # migration harness's `recover` step); what each re-run started and what Prefect recorded go to `measured.json`.
    import time

    import anyio

    from .crash_agent import read_calls
    from .prefect_migration import agent_kind, read_subflows, run_migration_step

    database, home, results = workdir / 'prefect.db', workdir / 'home', workdir / 'results'
    results.mkdir(parents=True)
    shutil.copyfile(fixture / 'prefect.db', database)
    shutil.copytree(fixture / 'storage', home / 'storage')
    recorded = json.loads((fixture / 'run.json').read_text(encoding='utf-8'))
    flow_runs: dict[str, str] = recorded['flow_runs']
    with _prefect_server(database, home) as env:
        rerun_since = time.time()
        code = run_migration_step('recover', {tag: f'ours:{run}' for tag, run in flow_runs.items()}, results, env)
        assert code == 0, (results / 'recover.out').read_text(encoding='utf-8')
        again = read_calls(results / 'recover.calls.jsonl')
        warned = json.loads((results / 'recover.warnings.json').read_text(encoding='utf-8'))
        measured = {
            tag: {
                'result': json.loads((results / f'{tag}.json').read_text(encoding='utf-8')),
                'first_started': recorded['first_started'][tag],
                'started_again': [call.label for call in again if call.kind == 'start' and call.run == tag],
                'subflows': [
                    dataclasses.asdict(subflow)
                    for subflow in anyio.run(read_subflows, flow_run_id, rerun_since, _CALLS[agent_kind(tag)])
                ],
                'warnings': [message for message in warned if flow_run_id in message],
            }
            for tag, flow_run_id in flow_runs.items()
        }
    (workdir / 'measured.json').write_text(json.dumps(measured), encoding='utf-8')


_CALLS = {'crash': 6, 'mcp': 5}
"""Model requests and tool calls of a migration run, by agent: what a re-run that repeats every call records."""


def main() -> None:
    """`python -m harness.upgrade STEP FIXTURE WORKDIR`.

    STEP is `prefect-record` or `prefect-resume` (the upgrade fixture), `prefect-reference-record` or
    `prefect-reference-migrate` (the migration fixture; the latter writes `WORKDIR/measured.json`).
    """
    step, fixture, workdir = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    os.environ.setdefault('PREFECT_SERVER_ANALYTICS_ENABLED', 'false')
    os.environ.setdefault('DO_NOT_TRACK', '1')
    steps = {
        'prefect-record': _prefect_record,
        'prefect-resume': _prefect_resume,
        'prefect-reference-record': _prefect_reference_record,
        'prefect-reference-migrate': _prefect_reference_migrate,
    }
    steps[step](fixture, workdir)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # no interpreter teardown: Prefect's background threads can abort it (see ENGINES.md)


def fold_wal(database: Path) -> None:
    """Checkpoint SQLite's write-ahead log into the database file, so that one file holds everything."""
    with sqlite3.connect(database) as connection:
        connection.execute('PRAGMA wal_checkpoint(TRUNCATE)')
        connection.execute('PRAGMA journal_mode=DELETE')
    with sqlite3.connect(database) as connection:
        connection.execute('VACUUM')  # the fixture is committed: no free pages


if __name__ == '__main__':
    main()
