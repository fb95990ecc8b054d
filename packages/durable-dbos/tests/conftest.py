from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from durable_dbos.testing import dbos_session, postgres_server, postgres_url, sqlite_url

BACKENDS = ['sqlite', 'postgres']
both_backends = pytest.mark.parametrize('backend', BACKENDS, indirect=True)


@pytest.fixture
def anyio_backend() -> str:
    return 'asyncio'


@pytest.fixture(scope='session')
def postgres_server_url() -> Iterator[str]:
    """One PostgreSQL server per xdist worker, stopped at the end of the session (started only when a test needs it).

    Its data lives outside pytest's temporary directories: pytest deletes old session directories when other pytest
    sessions start (several may run at once on one machine), which killed a running server under us.
    """
    directory = Path(tempfile.mkdtemp(prefix='durable-dbos-tests-pg-'))
    try:
        with postgres_server(directory) as url:
            yield url
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """'sqlite' unless the test is parametrized with `both_backends`."""
    return getattr(request, 'param', 'sqlite')


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == 'sqlite':
        return sqlite_url(tmp_path)
    server_url: str = request.getfixturevalue('postgres_server_url')
    # One database per xdist worker; each test empties it (`DBOS.reset_system_database`).
    return postgres_url(server_url, f'dbos_{os.environ.get("PYTEST_XDIST_WORKER", "main")}')


@pytest.fixture
def dbos_launch(database_url: str) -> Iterator[Callable[[], None]]:
    """Call it after building the test's agents: DBOS needs them before launch. Destroys DBOS after the test."""
    with dbos_session(database_url) as launch:
        yield launch


@pytest.fixture
def agent_name(request: pytest.FixtureRequest) -> str:
    """A name unique in this process: DBOS registers each agent name once."""
    base = re.sub(r'\W+', '_', request.node.name)[:40]
    return f'{base}_{uuid.uuid4().hex[:6]}'
