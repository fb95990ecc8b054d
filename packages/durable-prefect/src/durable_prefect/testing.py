"""Test kit: run Prefect flows against a private, offline, ephemeral Prefect server.

```python
from durable_prefect.testing import prefect_test_server


@pytest.fixture(scope='session')
def prefect_server():
    with prefect_test_server():
        yield
```

Starting the server takes about 10 seconds (database migrations), so start it once per test session (and per
pytest-xdist worker). Telemetry and flow heartbeats are switched off, results are stored in a temporary
`PREFECT_HOME`, and the server process is stopped on exit, by PID if Prefect's own shutdown did not stop it.
A server left behind by a test process that died hard is found (through a PID file) and stopped the next time
[`prefect_test_server`][durable_prefect.testing.prefect_test_server] starts.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Generator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

__all__ = ('TELEMETRY_OFF_ENV', 'prefect_test_server', 'reap_orphaned_servers')

TELEMETRY_OFF_ENV: dict[str, str] = {
    'PREFECT_SERVER_ANALYTICS_ENABLED': 'false',
    'DO_NOT_TRACK': '1',
}
"""Environment variables that switch Prefect's (and other libraries') telemetry off."""

_PID_DIR = Path(tempfile.gettempdir()) / 'durable-prefect-test-servers'
_HOME_PREFIX = 'durable-prefect-home-'


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - alive but owned by someone else
        return True
    try:
        # A zombie (dead, not yet reaped by its parent) still answers signal 0: it is dead all the same.
        stat = Path(f'/proc/{pid}/stat').read_text()
    except OSError:  # pragma: no cover - no /proc (macOS), or it just exited
        return True
    return stat.rsplit(')', 1)[-1].split()[0] != 'Z'


def _is_prefect_server(pid: int) -> bool:
    """Whether `pid` is an ephemeral Prefect API server (so a recycled PID is never killed by mistake)."""
    try:
        cmdline = Path(f'/proc/{pid}/cmdline').read_bytes()
    except OSError:
        return _pid_alive(pid)  # no /proc (macOS): trust the PID file
    return b'prefect.server.api.server:create_app' in cmdline


def _kill(pid: int) -> None:
    """Terminate `pid`, then kill it if it is still alive after a grace period."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                # Reap it if it is our child, so it does not linger as a zombie.
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = 0 if _pid_alive(pid) else pid
            if done == pid or not _pid_alive(pid):
                return
            time.sleep(0.05)


def reap_orphaned_servers() -> list[int]:
    """Stop test servers whose owning test process is gone (it died before it could stop them).

    Returns:
        The PIDs of the servers that were stopped.
    """
    reaped: list[int] = []
    if not _PID_DIR.is_dir():
        return reaped
    for pid_file in _PID_DIR.glob('*.json'):
        try:
            record = json.loads(pid_file.read_text())
            owner, server = int(record['owner_pid']), int(record['server_pid'])
        except (OSError, ValueError, KeyError, TypeError):
            pid_file.unlink(missing_ok=True)
            continue
        if _pid_alive(owner):
            continue
        if _pid_alive(server) and _is_prefect_server(server):
            _kill(server)
            reaped.append(server)
        home = record.get('home')
        if isinstance(home, str) and Path(home).name.startswith(_HOME_PREFIX):
            shutil.rmtree(home, ignore_errors=True)
        pid_file.unlink(missing_ok=True)
    return reaped


@contextmanager
def _environment(values: dict[str, str]) -> Generator[None]:
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _server_pid_file(server_pid: int, home: Path) -> Generator[Path]:
    _PID_DIR.mkdir(parents=True, exist_ok=True)
    pid_file = _PID_DIR / f'{os.getpid()}-{server_pid}.json'
    pid_file.write_text(json.dumps({'owner_pid': os.getpid(), 'server_pid': server_pid, 'home': str(home)}))
    try:
        yield pid_file
    finally:
        pid_file.unlink(missing_ok=True)


@contextmanager
def _settings_seen_by_copied_contexts() -> Generator[None]:
    """Make the test server's settings Prefect's process-global fallback settings while the server runs.

    Prefect keeps its settings in a context variable, and falls back to a process-global settings context where a
    `contextvars` context holds none. A context copied before the server started holds none: the runner task of
    anyio's pytest plugin once a session-scoped async fixture keeps it alive, a `unittest.IsolatedAsyncioTestCase`.
    Code running there read the global fallback, made at import: no API URL (`PREFECT_API_URL.value()` is None, so a
    process started with it cannot reach the server), results stored outside the temporary home. Prefect's own
    `prefect_test_harness` sets the global fallback too in recent versions (PrefectHQ/prefect#15818; 3.8 does, 3.6
    does not); on older ones, this does it, and restores it on exit.
    """
    import prefect.context

    current = prefect.context.get_settings_context()
    previous = prefect.context.GLOBAL_SETTINGS_CONTEXT
    if previous is current:  # Prefect's harness has done it
        yield
        return
    prefect.context.GLOBAL_SETTINGS_CONTEXT = current
    try:
        yield
    finally:
        prefect.context.GLOBAL_SETTINGS_CONTEXT = previous


@contextmanager
def prefect_test_server(*, server_startup_timeout: int = 120, database_url: str | None = None) -> Generator[Path]:
    """Start a private ephemeral Prefect server, offline, with telemetry and flow heartbeats off.

    Everything it starts is stopped on exit: Prefect's test harness, the server subprocess (killed by PID if
    the harness left it running) and the temporary `PREFECT_HOME`. Its settings are also seen by code running in a
    `contextvars` context copied before it started, such as anyio's pytest runner task when a session-scoped async
    fixture was set up first.

    Args:
        server_startup_timeout: Seconds to wait for the server to come up (migrations take ~10 s).
        database_url: The server's database as a SQLAlchemy URL (`postgresql+asyncpg://...`); default: a temporary
            SQLite file, as Prefect's own test harness uses. On SQLite the server answers some concurrent writes with
            `503 Service Unavailable` (its database is locked) and the client retries them after 2 s; a server on
            PostgreSQL does not, which matters when timing flow runs.

    Yields:
        The temporary `PREFECT_HOME` directory (results are persisted under it).
    """
    reap_orphaned_servers()
    home = Path(tempfile.mkdtemp(prefix=_HOME_PREFIX))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, home, ignore_errors=True)
        # The server subprocess inherits os.environ, so telemetry must be switched off there, before it starts.
        stack.enter_context(_environment({**TELEMETRY_OFF_ENV, 'PREFECT_HOME': str(home)}))

        # Imported late so that the environment above is in place when Prefect reads its settings.
        import prefect.settings
        from prefect.server.api.server import SubprocessASGIServer
        from prefect.settings import (
            PREFECT_HOME,
            PREFECT_LOCAL_STORAGE_PATH,
            PREFECT_SERVER_ANALYTICS_ENABLED,
            temporary_settings,
        )
        from prefect.testing.utilities import prefect_test_harness

        updates: dict[Any, Any] = {
            PREFECT_HOME: home,
            PREFECT_LOCAL_STORAGE_PATH: home / 'storage',
            PREFECT_SERVER_ANALYTICS_ENABLED: False,
        }
        # Flow-run heartbeats appeared in Prefect 3.6; where they exist they are switched off (a thread per run
        # that outlives short test flows). Older versions have no such setting and send no heartbeats.
        heartbeat = getattr(prefect.settings, 'PREFECT_FLOWS_HEARTBEAT_FREQUENCY', None)
        if heartbeat is not None:
            updates[heartbeat] = None
        stack.enter_context(temporary_settings(updates=updates))
        server_pids: list[int] = []

        def stop_leftover_server() -> None:
            for pid in server_pids:
                if _pid_alive(pid) and _is_prefect_server(pid):
                    _kill(pid)

        # Registered before the harness so that it runs after the harness's own shutdown.
        stack.callback(stop_leftover_server)
        if database_url is None:
            stack.enter_context(prefect_test_harness(server_startup_timeout=server_startup_timeout))
        else:
            stack.enter_context(_server_on(database_url, server_startup_timeout))
        stack.enter_context(_settings_seen_by_copied_contexts())
        server = SubprocessASGIServer._instances.get(None)  # pyright: ignore[reportPrivateUsage]
        process = server.server_process if server is not None else None
        if process is not None:
            server_pids.append(process.pid)
            stack.enter_context(_server_pid_file(process.pid, home))
        yield home


@contextmanager
def _server_on(database_url: str, server_startup_timeout: int) -> Generator[None]:
    """Prefect's `prefect_test_harness`, on the database at `database_url` instead of a temporary SQLite file.

    The harness fixes its database to SQLite; this does what it does otherwise: a server subprocess on a free port,
    registered as the process's default ephemeral server (so flow runs find it rather than start another one), the
    API URL pointed at it, all undone on exit.
    """
    import socket

    import prefect.settings
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.server.database.dependencies import temporary_database_interface
    from prefect.settings import temporary_settings

    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = int(probe.getsockname()[1])
    instances = SubprocessASGIServer._instances  # pyright: ignore[reportPrivateUsage]
    with ExitStack() as stack:
        stack.enter_context(temporary_database_interface())
        stack.enter_context(
            temporary_settings(updates={prefect.settings.PREFECT_SERVER_DATABASE_CONNECTION_URL: database_url})
        )
        server = SubprocessASGIServer(port=port)
        prior_default = instances.get(None)
        instances[None] = server

        def restore_default() -> None:
            if prior_default is None:
                instances.pop(None, None)
            else:
                instances[None] = prior_default

        stack.callback(restore_default)
        server.start(timeout=server_startup_timeout)
        stack.callback(server.stop)
        stack.enter_context(temporary_settings(updates={prefect.settings.PREFECT_API_URL: server.api_url}))
        yield
