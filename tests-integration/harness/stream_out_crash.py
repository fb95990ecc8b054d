"""Kill a worker mid-run while consumers outside the run read its live events; a second worker finishes the run.

The worker processes and their side-channel kill are the crash suite's (`crash_run.Zygote`, `crash_worker`, run with
`--stream-out`): the first worker dies of SIGKILL at a side-channel line (`STREAM_CRASH_KILL_POINTS`), a second one
recovers the run. Two consumers in this process read the run's channel with the engine's `stream_agent_events`:

- `live` subscribes once the run exists and reads through the kill and the recovery to the terminal event;
- `reconnecting` stops after `RECONNECT_AFTER` events (inside the first model request's first attempt) and, once the
  first worker is dead, continues from its `offset + 1`.

The first model request waits (see `stream_crash_agent`) until both have read their first events, so both were
subscribed before the kill.
"""

from __future__ import annotations

import contextlib
import signal
import uuid
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio

from .crash_agent import Call, CrashDeps, read_calls
from .crash_run import WorkerProcess, Zygote, prefect_worker_env, stop_worker, wait_worker
from .stream_crash_agent import CONSUMERS_READY, STREAM_CRASH_PROMPT

__all__ = ('RECONNECT_AFTER', 'StreamOutCrash', 'stream_out_crash', 'stream_out_zygote')

RECONNECT_AFTER = 2
"""Events the reconnecting consumer reads before it stops (the first request has published more before the kill)."""
WAIT_SECONDS = 180.0


@dataclass
class StreamOutCrash:
    """What a killed stream-out run produced."""

    killed: bool = False
    """The first worker died of SIGKILL."""
    output: str | None = None
    live: list[tuple[int, Any]] = field(default_factory=list[tuple[int, Any]])
    """`(offset, event)` of the consumer that read through the kill."""
    reconnecting: list[tuple[int, Any]] = field(default_factory=list[tuple[int, Any]])
    """`(offset, event)` of the consumer that stopped before the kill and continued after it."""
    resumed_at: int = 0
    """The `from_offset` the reconnecting consumer continued from."""
    calls: list[Call] = field(default_factory=list[Call])


@asynccontextmanager
async def stream_out_zygote(engine: str, prefect_home: Path | None = None) -> AsyncGenerator[Zygote]:
    """The crash suite's zygote of `engine` (Prefect's workers reach the test server at `prefect_home`)."""
    env = prefect_worker_env(prefect_home) if engine == 'prefect' and prefect_home is not None else None
    zygote = await anyio.to_thread.run_sync(lambda: Zygote(engine, env))
    try:
        yield zygote
    finally:
        zygote.close()


async def _read(events: Any, into: list[tuple[int, Any]], stop_after: int | None = None) -> None:
    async with events:
        async for event in events:
            into.append((events.offset, event))
            if stop_after is not None and len(into) == stop_after:
                return


async def stream_out_crash(
    engine: str, zygote: Zygote, kill_at: int, workdir: Path, *, temporal_client: Any = None
) -> StreamOutCrash:
    """Run the stream crash agent on `engine`, kill its worker at side-channel line `kill_at`, recover, read."""
    log = workdir / 'calls.jsonl'
    result_file = workdir / 'result.json'
    outcome = StreamOutCrash()
    workers: list[WorkerProcess] = []
    opened: list[Callable[[int], Any]] = []
    output: list[str] = []
    handle: Any = None

    async def run_exists() -> None:
        # The first side-channel line: the worker has started the run (its workflow, flow run) and its first request.
        with anyio.fail_after(WAIT_SECONDS):
            while not read_calls(log):
                await anyio.sleep(0.02)

    async with contextlib.AsyncExitStack() as stack:
        if engine == 'dbos':
            from dbos import DBOSClient

            from durable_dbos import stream_agent_events as dbos_events

            database = f'sqlite:///{workdir / "dbos.sqlite"}'
            workflow_id = f'stream-crash-{uuid.uuid4().hex}'
            args = [
                'dbos',
                '--stream-out',
                '--db',
                database,
                '--workflow-id',
                workflow_id,
                '--result',
                str(result_file),
            ]
            workers.append(zygote.spawn(args, workdir, log, kill_at))
            await run_exists()
            client = DBOSClient(system_database_url=database)
            stack.callback(client.destroy)
            from .stream_crash_agent import STREAM_CRASH_TOPIC

            opened.append(
                lambda offset: dbos_events(
                    workflow_id,
                    STREAM_CRASH_TOPIC,
                    output_type=str,
                    from_offset=offset,
                    client=client,
                    polling_interval=timedelta(milliseconds=20),
                )
            )

            def recover() -> WorkerProcess:
                return zygote.spawn([*args, '--recover'], workdir, log, None)

        elif engine == 'prefect':
            from prefect.client.orchestration import get_client

            from .prefect_crash import prefect_stream_crash_agent, stream_crash_flow

            async with get_client() as prefect:
                flow_run = await prefect.create_flow_run(
                    stream_crash_flow, parameters={'prompt': STREAM_CRASH_PROMPT, 'factor': 7}
                )
            args = ['prefect', '--stream-out', '--flow-run-id', str(flow_run.id), '--result', str(result_file)]
            workers.append(zygote.spawn(args, workdir, log, kill_at))
            await run_exists()
            opened.append(
                lambda offset: prefect_stream_crash_agent.stream_agent_events(
                    flow_run.id, from_offset=offset, polling_interval=timedelta(milliseconds=50)
                )
            )

            def recover() -> WorkerProcess:
                return zygote.spawn([*args, '--recover'], workdir, log, None)

        elif engine == 'temporal':
            from .temporal_stream_crash import STREAM_CRASH_WORKFLOW_NAME, temporal_stream_crash_agent

            task_queue = f'stream-crash-{uuid.uuid4().hex}'
            handle = await temporal_client.start_workflow(
                STREAM_CRASH_WORKFLOW_NAME,
                args=[STREAM_CRASH_PROMPT, CrashDeps()],
                id=f'stream-crash-{uuid.uuid4().hex}',
                task_queue=task_queue,
                result_type=str,
                # A workflow task lost with the killed worker is retried after this timeout.
                task_timeout=timedelta(seconds=2),
            )
            config = temporal_client.service_client.config
            base = ['temporal', '--address', config.target_host, '--namespace', temporal_client.namespace]
            base += ['--task-queue', task_queue]
            workers.append(zygote.spawn([*base, '--ready', str(workdir / 'ready-1')], workdir, log, kill_at))
            opened.append(
                lambda offset: temporal_stream_crash_agent.stream_agent_events(
                    temporal_client, handle, from_offset=offset, poll_cooldown=timedelta(milliseconds=50)
                )
            )

            def recover() -> WorkerProcess:
                return zygote.spawn([*base, '--ready', str(workdir / 'ready-2')], workdir, log, None)

        else:
            raise ValueError(f'unknown engine {engine!r}')

        open_events = opened[0]
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(_read, open_events(0), outcome.live)
                first_part: list[tuple[int, Any]] = []
                with anyio.fail_after(WAIT_SECONDS):
                    await _read(open_events(0), first_part, RECONNECT_AFTER)
                    while not outcome.live:
                        await anyio.sleep(0.01)
                # Both consumers have read events of the first request: let it go on to the kill point.
                (workdir / CONSUMERS_READY).write_text('ready', encoding='utf-8')
                outcome.killed = await wait_worker(workers[0], WAIT_SECONDS) == -signal.SIGKILL
                workers.append(recover())
                outcome.resumed_at = first_part[-1][0] + 1
                second_part: list[tuple[int, Any]] = []
                with anyio.fail_after(WAIT_SECONDS):
                    await _read(open_events(outcome.resumed_at), second_part)
                outcome.reconnecting = first_part + second_part
                if engine == 'temporal':
                    with anyio.fail_after(WAIT_SECONDS):
                        output.append(await handle.result())
                else:
                    await wait_worker(workers[-1], WAIT_SECONDS)
        finally:
            for worker in workers:
                await stop_worker(worker)
    if output:
        outcome.output = output[0]
    elif result_file.exists():
        import json

        outcome.output = json.loads(result_file.read_text(encoding='utf-8')).get('output')
    outcome.calls = read_calls(log)
    return outcome
