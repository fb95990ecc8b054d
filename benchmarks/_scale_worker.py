"""One worker process of the scale-out benchmark (`just bench-scale`), started and stopped by PID by `_scale.py`.

    python -m benchmarks._scale_worker temporal --address HOST:PORT --task-queue QUEUE
    python -m benchmarks._scale_worker dbos --database-url URL --executor-id ID --worker-concurrency N
    python -m benchmarks._scale_worker prefect --runner-name NAME --limit N   # PREFECT_API_URL set by the caller

The process prints `ready` on stdout once it takes work, and shuts down cleanly on SIGTERM (or when its stdin closes,
so that a dead benchmark never leaves workers behind).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Any

DBOS_APP = 'durable-bench-scale'
"""The application name and version every DBOS worker process launches with: DBOS hands a queued workflow only to
processes of the version that enqueued it."""
DBOS_QUEUE = 'bench_scale'
"""The DBOS queue the client enqueues to and every worker process dequeues from."""
AGENT_NAME = 'bench_scale'
"""The benchmark agent's name in the DBOS workers (it names the `{agent}.run` workflow the client enqueues)."""


def _stop_event() -> asyncio.Event:
    """An event set by SIGTERM/SIGINT or by the end of stdin (the benchmark process went away)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def watch_stdin() -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(stop.set)

    loop.run_in_executor(None, watch_stdin)
    return stop


def _ready() -> None:
    print('ready', flush=True)


async def _temporal(args: argparse.Namespace) -> None:
    from temporalio.client import Client
    from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
    from temporalio.worker import Worker

    from durable_temporal import PydanticAIPlugin

    from ._temporal_ours import OursWorkflow

    # Core warnings (a first workflow task slowed by many sandboxes starting at once) are noise here.
    Runtime.set_default(
        Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=TelemetryFilter('ERROR', 'ERROR')))),
        error_if_already_set=False,
    )
    client = await Client.connect(args.address, namespace=args.namespace, plugins=[PydanticAIPlugin()])
    stop = _stop_event()
    # The SDK's default slots (100 workflow tasks, 100 activities at once) and workflow cache (1000 runs) hold the
    # benchmark's 200 runs in flight on one process: nothing is tuned, so the figures are the defaults' figures.
    async with Worker(client, task_queue=args.task_queue, workflows=[OursWorkflow]):
        _ready()
        await stop.wait()


async def _dbos(args: argparse.Namespace) -> None:
    from dbos import DBOS, DBOSConfig

    from durable_dbos import DBOSAgent

    from ._workload import build_agent

    # Registered before launch, as DBOS requires: the client enqueues this agent's `bench_scale.run` workflow.
    DBOSAgent(build_agent(AGENT_NAME))
    DBOS(
        config=DBOSConfig(
            name=DBOS_APP,
            system_database_url=args.database_url,
            application_version=DBOS_APP,
            # Each process its own executor: `worker_concurrency` counts per executor, and recovery is per executor.
            executor_id=args.executor_id,
            notification_listener_polling_interval_sec=0.05,
            log_level='WARNING',
        )
    )
    stop = _stop_event()
    try:
        DBOS.launch()
        await DBOS.register_queue_async(
            DBOS_QUEUE,
            worker_concurrency=args.worker_concurrency,
            polling_interval_sec=args.polling_interval,
            on_conflict='always_update',
        )
        _ready()
        await stop.wait()
    finally:
        DBOS.destroy()


async def _prefect(args: argparse.Namespace) -> None:
    from prefect.runner import Runner

    from ._scale_prefect import DEPLOYMENT, served_flow

    # What `served_flow.serve()` does, with the knobs the benchmark needs: a runner polling every `--poll` seconds
    # (Prefect's default is 10 s) and running at most `--limit` flow runs at once, each in a subprocess of its own.
    runner = Runner(
        name=args.runner_name,
        query_seconds=args.poll,
        limit=args.limit,
        pause_on_shutdown=False,
        heartbeat_seconds=None,
    )
    # `aadd_flow`/`astop` since Prefect 3.5 or so; before, `add_flow`/`stop` are awaitable in async code.
    add_flow: Any = getattr(runner, 'aadd_flow', None) or runner.add_flow
    stop_runner: Any = getattr(runner, 'astop', None) or runner.stop
    await add_flow(served_flow, name=DEPLOYMENT)
    stop = asyncio.ensure_future(_stop_event().wait())
    serving = asyncio.ensure_future(runner.start())
    while not runner.started and not serving.done():
        await asyncio.sleep(0.05)
    _ready()
    await asyncio.wait([serving, stop], return_when=asyncio.FIRST_COMPLETED)
    # On SIGTERM the runner's own handler (installed by `start`) may already be stopping it.
    if not serving.done() and runner.started:
        await stop_runner()
    await asyncio.wait_for(serving, 15)


def main() -> None:
    """Entry point: serve until SIGTERM, then leave without the interpreter's teardown."""
    parser = argparse.ArgumentParser(prog='python -m benchmarks._scale_worker')
    engines = parser.add_subparsers(dest='engine', required=True)
    temporal = engines.add_parser('temporal')
    temporal.add_argument('--address', required=True)
    temporal.add_argument('--namespace', default='default')
    temporal.add_argument('--task-queue', required=True)
    dbos = engines.add_parser('dbos')
    dbos.add_argument('--database-url', required=True)
    dbos.add_argument('--executor-id', required=True)
    dbos.add_argument('--worker-concurrency', type=int, required=True)
    dbos.add_argument('--polling-interval', type=float, default=0.1)
    prefect = engines.add_parser('prefect')
    prefect.add_argument('--runner-name', required=True)
    prefect.add_argument('--limit', type=int, required=True)
    prefect.add_argument('--poll', type=float, default=1.0)
    args = parser.parse_args()
    runner = {'temporal': _temporal, 'dbos': _dbos, 'prefect': _prefect}[args.engine]
    code = 0
    try:
        asyncio.run(runner(args))
    except Exception as error:
        print(f'{args.engine} worker failed: {type(error).__name__}: {error}', file=sys.stderr, flush=True)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal SDK can abort at interpreter exit after a worker ran: everything is shut down, so leave now.
    os._exit(code)


if __name__ == '__main__':
    main()
