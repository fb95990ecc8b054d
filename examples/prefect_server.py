"""Start a local Prefect API server in a child process (stopped by PID): for the demo and the example tests.

    with local_prefect_server(workdir) as api_url:
        env = {**os.environ, 'PREFECT_API_URL': api_url}   # point worker processes at it

Prefect's own "ephemeral" mode starts a temporary server inside each process that has no `PREFECT_API_URL`; that is
fine for a single script, but processes that must share flow runs (a crashed one and its successor) need one
server. Its database lives in `workdir` (SQLite), so nothing outside it is touched.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path

SETTINGS_ENV = {
    'PREFECT_SERVER_ANALYTICS_ENABLED': 'false',
    'DO_NOT_TRACK': '1',
    'PREFECT_UI_ENABLED': 'false',
    'PREFECT_LOGGING_LEVEL': 'WARNING',
}
"""No telemetry, no UI, quiet logs."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return int(s.getsockname()[1])


def prefect_env(workdir: Path, api_url: str | None = None) -> dict[str, str]:
    """Environment variables for processes using the server (or, without `api_url`, being it)."""
    env = {**SETTINGS_ENV, 'PREFECT_HOME': str(workdir / 'prefect-home')}
    if api_url:
        env['PREFECT_API_URL'] = api_url
    return {k: v for k, v in env.items() if v}


@contextmanager
def local_prefect_server(
    workdir: Path, *, timeout: float = 120, ui: bool = False, keep_running: bool = False
) -> Generator[str]:
    """Run `uvicorn prefect.server.api.server:create_app` on a free port; yield its API URL; stop it on exit.

    With `ui`, the server also serves Prefect's web UI at the URL without `/api`. With `keep_running`, the server is
    left running on exit (its PID is in `workdir / 'prefect-server.pid'`), for a user to explore the runs in the UI.
    """
    # Found, not imported: a caller may still set PREFECT_API_URL for itself before it imports prefect (the web chat).
    spec = importlib.util.find_spec('prefect')
    assert spec is not None, 'prefect is not installed'
    assert spec.origin is not None
    prefect_dir = Path(spec.origin).parent

    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    server_env = prefect_env(workdir)
    if ui:
        server_env |= {'PREFECT_UI_ENABLED': 'true', 'PREFECT_UI_API_URL': f'http://127.0.0.1:{port}/api'}
    log = open(workdir / 'prefect-server.log', 'wb')  # noqa: SIM115 - closed in `finally`
    process = subprocess.Popen(
        [
            sys.executable,
            '-m',
            'uvicorn',
            '--app-dir',
            str(prefect_dir.parent),
            '--factory',
            'prefect.server.api.server:create_app',
            '--host',
            '127.0.0.1',
            '--port',
            str(port),
            '--log-level',
            'error',
            '--lifespan',
            'on',
        ],
        env={**os.environ, **server_env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api_url = f'http://127.0.0.1:{port}/api'
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f'The Prefect server exited: see {workdir / "prefect-server.log"}.')
            try:
                with urllib.request.urlopen(f'{api_url}/health', timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f'The Prefect server did not answer within {timeout:.0f} s.')
            time.sleep(0.2)
        yield api_url
    finally:
        if keep_running and process.poll() is None:
            (workdir / 'prefect-server.pid').write_text(str(process.pid))
            log.close()
            return  # noqa: B012 - on purpose: the caller asked to keep the server, even after an error
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
