"""Record the pydantic-ai upgrade fixtures (`tests-integration/histories/upgrade/`), on the lock (pydantic-ai 1.107).

    uv run python tests-integration/record_upgrade_fixtures.py [dbos-reference|dbos-reference-UNIT|dbos|prefect|prefect-reference ...]

The migration fixtures (`dbos-reference*`, `prefect-reference`) are recorded by the installed pydantic-ai's own
wrappers, on 1.107.10 (the lock) or 2.78.0 (`.venvs/pai2-newest/bin/python tests-integration/record_upgrade_fixtures.py
dbos-reference prefect-reference`); the upgrade fixtures (`dbos`, `prefect`) on 1.107 only.

Each engine's crash worker is killed in the middle of the crash agent's run and what the engine stored is kept; see
`harness/upgrade.py`. Re-record only on purpose: the point of the fixtures is that they were made by an older line.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from harness.crash_agent import read_calls  # noqa: E402
from harness.upgrade import (  # noqa: E402
    KILL_AT,
    MIGRATION_KILL_AT,
    MIGRATION_WORKFLOW_ID,
    UPGRADE_DIR,
    MigrationUnit,
    dbos_fixture,
    dbos_reference_fixture,
    fold_wal,
    installed_reference_line,
    migration_agent,
    prefect_fixture,
    prefect_reference_fixture,
    run_dbos_worker,
    run_prefect_step,
)

from durable_kernel import PYDANTIC_AI_2, PYDANTIC_AI_VERSION  # noqa: E402


def _record_dbos(workdir: Path) -> Path:
    database = workdir / 'dbos.sqlite'
    code = run_dbos_worker(database, workdir / 'calls.log', workdir / 'result.json', recover=False, kill_at=KILL_AT)
    assert code == -9, f'the worker should have killed itself at line {KILL_AT}, exit code {code}'
    assert len(read_calls(workdir / 'calls.log')) == KILL_AT
    fold_wal(database)
    UPGRADE_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(database, dbos_fixture())
    return dbos_fixture()


def _record_dbos_reference(workdir: Path, unit: MigrationUnit) -> Path:
    # Started by pydantic-ai's own wrapper, under the version DBOS computes (a user who only changes the import).
    database, log = workdir / 'dbos.sqlite', workdir / 'calls.log'
    kill_at = MIGRATION_KILL_AT[unit]
    code = run_dbos_worker(
        database,
        log,
        workdir / 'result.json',
        recover=False,
        kill_at=kill_at,
        workflow_id=MIGRATION_WORKFLOW_ID,
        wrapper='reference',
        app_version='computed',
        agent=migration_agent(unit),
    )
    assert code == -9, f'the worker should have killed itself at line {kill_at}, exit code {code}'
    assert len(read_calls(log)) == kill_at
    fold_wal(database)
    fixture = dbos_reference_fixture(unit, installed_reference_line())
    shutil.copyfile(database, fixture)
    return fixture


def main() -> None:
    """Record the fixtures named on the command line, or all of them.

    `dbos-reference` (the DBOS migration fixtures of every unit), `dbos-reference-UNIT` (one of them),
    `prefect-reference` (the Prefect migration fixture), `dbos`, `prefect` (the upgrade fixtures).
    """
    targets = sys.argv[1:] or ['dbos-reference', 'dbos', 'prefect', 'prefect-reference']
    if PYDANTIC_AI_2 and {'dbos', 'prefect'} & set(targets):
        sys.exit(f'record the upgrade fixtures on pydantic-ai 1.107 (the lock), not {PYDANTIC_AI_VERSION}')
    for unit in MIGRATION_KILL_AT:
        if 'dbos-reference' in targets or f'dbos-reference-{unit}' in targets:
            with tempfile.TemporaryDirectory(prefix='durable-upgrade-') as workdir:
                print(_record_dbos_reference(Path(workdir), unit).relative_to(HERE.parent))
    if 'dbos' in targets:
        with tempfile.TemporaryDirectory(prefix='durable-upgrade-') as workdir:
            print(_record_dbos(Path(workdir)).relative_to(HERE.parent))
    if 'prefect' in targets:
        with tempfile.TemporaryDirectory(prefix='durable-upgrade-') as workdir:
            assert run_prefect_step('prefect-record', prefect_fixture(), Path(workdir)) == 0
            print(prefect_fixture().relative_to(HERE.parent))
    if 'prefect-reference' in targets:
        with tempfile.TemporaryDirectory(prefix='durable-upgrade-') as workdir:
            fixture = prefect_reference_fixture(installed_reference_line())
            assert run_prefect_step('prefect-reference-record', fixture, Path(workdir)) == 0
            print(fixture.relative_to(HERE.parent))


if __name__ == '__main__':
    main()
