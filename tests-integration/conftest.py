"""Fixtures of the cross-engine suite: one harness per engine and per xdist worker, started on first use.

Every test that runs on an engine is parametrized with the engine's name as its id (`temporal`, `dbos`, `prefect`)
and put in that engine's xdist group, so `pytest tests-integration -k dbos` selects one engine and each engine's
server starts in one worker only. `--engine dbos` does the same selection as an option.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

# `harness` must import by that name everywhere, including in the Temporal sandbox and in worker subprocesses.
HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from harness import ENGINES, EngineHarness  # noqa: E402


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        '--engine',
        action='append',
        choices=ENGINES,
        help='Run only the tests of this engine (repeatable); the same as `-k <engine>`.',
    )


def pytest_configure(config: pytest.Config) -> None:
    """Accept a bare engine name as an argument (`just test-integration dbos` passes `dbos` after the directory)."""
    bare = [arg for arg in config.args if arg in ENGINES]
    if bare:
        config.args[:] = [arg for arg in config.args if arg not in ENGINES] or [str(HERE)]
        config.option.engine = [*(config.option.engine or []), *bare]


def _engine_of(item: pytest.Item) -> str | None:
    """The engine a test runs on: its `engine` parameter (`dbos-postgres` is DBOS), else its xdist group."""
    callspec: Any = getattr(item, 'callspec', None)
    engine = callspec.params.get('engine') if callspec is not None else None
    if engine is None:
        marker = item.get_closest_marker('xdist_group')
        engine = marker.kwargs.get('name', marker.args[0] if marker.args else None) if marker else None
    return str(engine).split('-')[0] if engine is not None else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted: list[str] | None = config.getoption('--engine')
    if not wanted:
        return
    selected: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        (selected if _engine_of(item) in wanted else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


@pytest.fixture(scope='session')
def anyio_backend() -> str:
    """Session-scoped, so that the session-scoped async fixtures (the Temporal server) can use anyio's runner."""
    return 'asyncio'


@pytest.fixture(scope='session')
async def temporal_harness(anyio_backend: str) -> AsyncIterator[EngineHarness]:
    """A Temporal dev server and an in-process worker for every scenario workflow."""
    from harness.temporal_engine import TemporalHarness

    async with TemporalHarness.start() as harness:
        yield harness


@pytest.fixture(scope='session')
def dbos_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineHarness]:
    """DBOS launched on a SQLite file with every scenario's `DBOSAgent`; destroyed at the end of the session."""
    from harness.dbos_engine import DBOSHarness

    from durable_dbos.testing import sqlite_url

    with DBOSHarness.start(sqlite_url(tmp_path_factory.mktemp('dbos'))) as harness:
        yield harness


@pytest.fixture(scope='session')
def prefect_home() -> Iterator[Path]:
    """A private ephemeral Prefect server (~10 s to start) for the session; yields its `PREFECT_HOME`."""
    from durable_prefect.testing import prefect_test_server

    with prefect_test_server() as home:
        yield home


@pytest.fixture(scope='session')
def prefect_harness(prefect_home: Path) -> EngineHarness:
    """Every scenario's `PrefectAgent`, run on the session's Prefect server."""
    from harness.prefect_engine import PrefectHarness

    return PrefectHarness()


@pytest.fixture(scope='session')
def postgres_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private PostgreSQL server (`durable_dbos.testing.postgres_server`), stopped at the end of the session."""
    from durable_dbos.testing import postgres_server

    with postgres_server(tmp_path_factory.mktemp('postgres')) as url:
        yield url


@pytest.fixture
def harness(engine: str, request: pytest.FixtureRequest) -> EngineHarness:
    """The harness of the test's `engine` parameter."""
    return request.getfixturevalue(f'{engine}_harness')
