"""Configure, launch and destroy DBOS around one test."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dbos import DBOS, DBOSConfig

__all__ = ('dbos_session', 'sqlite_url', 'workflow_step_names', 'workflow_step_names_async')


def sqlite_url(directory: str | Path, file_name: str = 'dbos.sqlite') -> str:
    """A DBOS system database URL for a SQLite file in `directory`."""
    return f'sqlite:///{Path(directory) / file_name}'


@contextmanager
def dbos_session(
    system_database_url: str | None = None,
    *,
    app_name: str = 'durable-dbos-test',
    config: DBOSConfig | None = None,
    reset: bool = True,
) -> Generator[Callable[[], None]]:
    """Give a test a fresh DBOS: yields `launch()`, to call after the test has built its agents.

    On entry any DBOS instance left by an earlier test in this process is destroyed. `launch()` configures DBOS on
    `system_database_url` (by default a SQLite file in a temporary directory, removed on exit), empties that database (unless `reset=False`, for a process that must recover what another
    process left) and launches it. On exit the DBOS instance is destroyed (the database itself is left alone: the
    caller owns its directory or server).

    Args:
        system_database_url: `sqlite:///…` or `postgresql://…` (see [`sqlite_url`][durable_dbos.testing.sqlite_url]
            and [`postgres_url`][durable_dbos.testing.postgres_url]); `None` for a temporary SQLite database.
        app_name: The DBOS application name.
        config: Extra DBOS config entries, merged over the test defaults.
        reset: Whether `launch()` empties the system database first.

    Yields:
        The `launch()` function.
    """
    temporary_dir = tempfile.mkdtemp(prefix='durable-dbos-') if system_database_url is None else None
    if temporary_dir is not None:
        system_database_url = sqlite_url(temporary_dir)
    DBOS.destroy()
    full_config: dict[str, Any] = {
        'name': app_name,
        'system_database_url': system_database_url,
        # Makes SQLite teardown ~0.04 s instead of ~1 s.
        'notification_listener_polling_interval_sec': 0.05,
        'log_level': 'WARNING',
        # A fixed version: DBOS only recovers workflows whose recorded version matches the recovering process.
        'application_version': 'durable-dbos-test',
    }
    full_config.update(config or {})

    def launch() -> None:
        DBOS(config=DBOSConfig(**full_config))
        if reset:
            DBOS.reset_system_database()
        DBOS.launch()

    try:
        yield launch
    finally:
        DBOS.destroy()
        if temporary_dir is not None:
            shutil.rmtree(temporary_dir, ignore_errors=True)


def workflow_step_names(workflow_id: str) -> list[str]:
    """The names of a workflow's recorded steps, in order (`DBOS.list_workflow_steps`; not inside an event loop)."""
    return [step['function_name'] for step in DBOS.list_workflow_steps(workflow_id, load_output=False)]


async def workflow_step_names_async(workflow_id: str) -> list[str]:
    """The names of a workflow's recorded steps, in order (`DBOS.list_workflow_steps_async`)."""
    steps = await DBOS.list_workflow_steps_async(workflow_id, load_output=False)
    return [step['function_name'] for step in steps]
