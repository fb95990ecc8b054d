"""A worker process of the fail-over suite: `python -m harness.failover_worker <engine> ...` (with
`tests-integration` on `PYTHONPATH`). The test starts two, lets runs spread over them, and kills one with SIGKILL.

- `temporal --address A --task-queue Q --ready F`: poll the task queue until SIGTERM, at most `SLOTS` activities at
  a time (so that the test's runs hold their last tool call on both workers).
- `dbos --db URL --executor-id E --runs R,... --results D --ready F`: launch DBOS as executor E (which recovers E's
  pending workflows, as a restarted executor does), start a workflow per run not yet started (id = the run's name)
  and write each run's output to `D/<run>.json`; then wait for SIGTERM.
- `prefect --ready F`: serve the fail-over flow as the `FAILOVER_DEPLOYMENT` deployment, at most `SLOTS` runs at
  a time (the test sets flow-run heartbeats to every 30 s, the minimum, for the zombie automation).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import signal
import sys
from pathlib import Path

SLOTS = 3
"""Runs (Prefect) or activities (Temporal) a worker takes at once: the test's 6 runs go 3 and 3."""


def _ready(path: str) -> None:
    Path(path).write_text('ready', encoding='utf-8')


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    return stop


async def _temporal(args: argparse.Namespace) -> None:
    from datetime import timedelta

    from temporalio.client import Client
    from temporalio.worker import Worker

    from durable_temporal import PydanticAIPlugin

    from .failover_temporal import FailoverWorkflow, failover_runner

    client = await Client.connect(args.address, namespace=args.namespace, plugins=[PydanticAIPlugin()])
    stop = _stop_event()
    # Workflows stay cached (sticky): after the kill, a cached run's next workflow task waits on the dead worker's
    # sticky queue for this long before it is moved to the shared queue and replayed on the survivor.
    worker = Worker(
        client,
        task_queue=args.task_queue,
        workflows=[FailoverWorkflow],
        max_concurrent_activities=SLOTS,
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=3),
        workflow_runner=failover_runner(),
    )
    async with worker:
        _ready(args.ready)
        await stop.wait()


async def _dbos(args: argparse.Namespace) -> None:
    from dbos import DBOS, DBOSConfig, SetWorkflowID, WorkflowHandleAsync
    from pydantic_ai.run import AgentRunResult

    from durable_dbos import DBOSAgent
    from durable_dbos.testing import dbos_session

    from .failover_agent import FailoverDeps, failover_agent, prompt_for

    results = Path(args.results)

    async def finish(run: str) -> None:
        # A workflow recovered by `DBOS.launch()` is already running: wait for it; else start it.
        status = await DBOS.get_workflow_status_async(run)
        if status is not None:
            handle: WorkflowHandleAsync[AgentRunResult[str]] = await DBOS.retrieve_workflow_async(run)
            output = (await handle.get_result()).output
        else:
            with SetWorkflowID(run):
                output = (await dbos_agent.run(prompt_for(run), deps=FailoverDeps(run=run))).output
        (results / f'{run}.json').write_text(json.dumps({'output': output}), encoding='utf-8')

    # Each process its own executor ID: DBOS tags every workflow with the ID of the executor that runs it.
    config: DBOSConfig = {'name': 'durable-failover', 'executor_id': args.executor_id}
    with dbos_session(args.db, app_name='durable-failover', reset=False, config=config) as launch:
        dbos_agent = DBOSAgent(failover_agent)
        launch()
        stop = _stop_event()
        _ready(args.ready)
        await asyncio.gather(*(finish(run) for run in args.runs.split(',')))
        await stop.wait()


async def _prefect(args: argparse.Namespace) -> None:
    from prefect.runner import Runner

    from .failover_prefect import FAILOVER_DEPLOYMENT, failover_flow

    # What `failover_flow.serve(name=..., limit=SLOTS)` does, with a ready file once the deployment is registered.
    runner = Runner(limit=SLOTS, query_seconds=1)
    registered = runner.add_flow(failover_flow, name=FAILOVER_DEPLOYMENT)
    if inspect.isawaitable(registered):  # a coroutine in an event loop (Prefect 3.6+), or on every older version
        await registered
    _ready(args.ready)
    await runner.start()


def main() -> None:
    """Parse the arguments and run the worker; exit without interpreter teardown."""
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest='engine', required=True)
    temporal = sub.add_parser('temporal')
    temporal.add_argument('--address', required=True)
    temporal.add_argument('--namespace', default='default')
    temporal.add_argument('--task-queue', required=True)
    dbos = sub.add_parser('dbos')
    dbos.add_argument('--db', required=True)
    dbos.add_argument('--executor-id', required=True)
    dbos.add_argument('--runs', required=True)
    dbos.add_argument('--results', required=True)
    prefect = sub.add_parser('prefect')
    for engine in (temporal, dbos, prefect):
        engine.add_argument('--ready', required=True)
    args = parser.parse_args()
    runner = {'temporal': _temporal, 'dbos': _dbos, 'prefect': _prefect}[args.engine]
    code = 0
    try:
        asyncio.run(runner(args))
    except BaseException as error:
        print(f'failover worker failed: {error!r}', file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # No interpreter teardown: engine SDK threads can hang it (see the crash worker).
    os._exit(code)


if __name__ == '__main__':
    main()
