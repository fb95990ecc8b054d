"""Runs recorded on pydantic-ai 1.107 and finished by the installed line: the fixtures and how to make and resume them.

A user upgrades pydantic-ai (1.107 -> 2.x) while agent runs are in flight. The crash agent (`crash_agent.py`) is
killed by its side channel at `start call-c` (line 9: model 1, tools a and b and model 2 are recorded), and what the
engine had stored at that moment is committed under `histories/upgrade/`:

- DBOS: the SQLite system database (`dbos-1.107.sqlite`), its write-ahead log folded in.

`record_upgrade_fixtures.py` makes them (on the lock, pydantic-ai 1.107); `test_upgrade.py` resumes them on whatever
line is installed and checks that nothing recorded runs again.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

__all__ = ('KILL_AT', 'UPGRADE_DIR', 'UPGRADE_WORKFLOW_ID', 'dbos_fixture', 'run_dbos_worker')

HERE = Path(__file__).resolve().parent
UPGRADE_DIR = HERE.parent / 'histories' / 'upgrade'
UPGRADE_WORKFLOW_ID = 'upgrade-from-1.107'
KILL_AT = 9  # `start call-c`: model-1, call-a, call-b and model-2 are recorded


def dbos_fixture() -> Path:
    """The committed DBOS system database of a crash run recorded on pydantic-ai 1.107."""
    return UPGRADE_DIR / 'dbos-1.107.sqlite'


def run_dbos_worker(database: Path, log: Path, result: Path, *, recover: bool, kill_at: int = 0) -> int:
    """Run the crash agent's DBOS worker in a subprocess on `database`; its exit code (-9 when it killed itself)."""
    env = {
        **os.environ,
        'PYTHONPATH': str(HERE.parent),
        'DURABLE_CRASH_LOG': str(log),
        'DURABLE_CRASH_KILL_AT': str(kill_at),
    }
    args = [sys.executable, '-m', 'harness.crash_worker', 'dbos', '--db', f'sqlite:///{database}']
    args += ['--workflow-id', UPGRADE_WORKFLOW_ID, '--result', str(result), *(['--recover'] if recover else [])]
    completed = subprocess.run(args, env=env, cwd=HERE.parent, capture_output=True, text=True, timeout=240)
    if completed.returncode not in (0, -9):
        print(completed.stdout, completed.stderr, file=sys.stderr)
    return completed.returncode


def fold_wal(database: Path) -> None:
    """Checkpoint SQLite's write-ahead log into the database file, so that one file holds everything."""
    with sqlite3.connect(database) as connection:
        connection.execute('PRAGMA wal_checkpoint(TRUNCATE)')
        connection.execute('PRAGMA journal_mode=DELETE')
