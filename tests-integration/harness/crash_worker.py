"""A worker process of the crash suite: `python -m harness.crash_worker <engine> ...` (with `tests-integration` on
`PYTHONPATH`). The side channel (`DURABLE_CRASH_LOG`) may kill it at any model request or tool call.

- `temporal --address A --task-queue Q [--migration ours|reference]`: poll until SIGTERM (the test starts the workflow
  and waits for it); `--migration` registers only the migration workflow (`harness/temporal_migration.py`) on ours or
  on pydantic-ai's own `TemporalAgent`.
- `dbos --db URL --workflow-id ID --result F [--recover] [--wrapper ours|reference|capability] [--function-tool-steps on|off]
  [--app-version V|computed] [--stream-out] [--agent crash|mcp]`: start the agent's workflow with that id, or (with `--recover`) let `DBOS.launch()`
  recover it; write its output (or its error) to F. `--wrapper reference` runs pydantic-ai's own `DBOSAgent`; `--stream-out` the stream crash agent
  (`harness/stream_crash_agent.py`), which publishes live events; `--agent mcp` the MCP crash agent
  (`harness/mcp_crash_agent.py`).
- `prefect --flow-run-id ID --result F [--recover] [--stream-out]`: run that flow run (created by the test); with `--recover`,
  reschedule the crashed flow run first, so that its completed tasks are served from their cache.
- `dbos-many` / `prefect-many` `... --run TAG=ID ... --results DIR [--recover]`: the same for several runs at once in
  one process (the random-kill suite, `harness/kill_run.py`); run TAG's prompt is `crash_prompt(TAG)`, its output goes
  to `DIR/TAG.json`. A recovering worker finishes every run, whatever the previous worker got to: a DBOS workflow the
  killed process never wrote is started, a Prefect flow run already completed returns its persisted result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from .crash_agent import CRASH_PROMPT, SERVER_ERROR_RERUN_LINE, CrashDeps, crash_agent, crash_prompt

SERVER_ERROR_RERUNS = 3
"""How many times a `prefect-many` worker runs a flow run again that the server failed with a 5xx."""


def _write_result(path: str, output: str) -> None:
    Path(path).write_text(json.dumps({'output': output}), encoding='utf-8')


async def _temporal(args: argparse.Namespace) -> None:
    from temporalio.client import Client
    from temporalio.worker import Worker

    from durable_temporal import PydanticAIPlugin

    from .temporal_crash import CrashWorkflow
    from .temporal_engine import HAS_WORKFLOW_STREAMS, harness_passthrough_runner

    workflows: list[type] = [CrashWorkflow]
    plugin: Any = PydanticAIPlugin()
    if args.migration == 'ours':  # the migration tests: the workflow a reference worker started, on ours
        from .temporal_migration import MigrationWorkflow

        workflows = [MigrationWorkflow]
    elif args.migration == 'reference':  # ... and the reference's worker that starts it
        from .reference_temporal import PydanticAIPlugin as ReferencePlugin
        from .reference_temporal import ReferenceMigrationWorkflow

        workflows, plugin = [ReferenceMigrationWorkflow], ReferencePlugin()
    elif HAS_WORKFLOW_STREAMS:  # the stream-out kill scenarios' workflow (temporalio >= 1.27.0)
        from .temporal_stream_crash import StreamCrashWorkflow

        workflows.append(StreamCrashWorkflow)

    client = await Client.connect(args.address, namespace=args.namespace, plugins=[plugin])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    # No workflow cache, hence no sticky queue: the next workflow task of a killed worker goes to the shared queue
    # at once instead of waiting for the sticky queue's timeout; every task replays the history from the start.
    # The test's own modules pass through the sandbox so that replays do not re-import them each time (CPU).
    # The reference's worker keeps its cache, as its users run it: the reference caches an MCP server's tool list on
    # its wrapper, so a replay of its own MCP workflow in the same process skips the listing it recorded and fails as
    # non-deterministic (its defect, fixed here): without a cache every workflow task would be such a replay.
    worker = Worker(
        client,
        task_queue=args.task_queue,
        workflows=workflows,
        max_cached_workflows=1000 if args.migration == 'reference' else 0,  # 1000: temporalio's default
        workflow_runner=harness_passthrough_runner(),
    )
    async with worker:
        Path(args.ready).write_text('ready', encoding='utf-8')
        await stop.wait()


def _capability_twin(agent: Any) -> Any:
    """`agent` made durable by ours' `DBOSDurability` with the wrappers' workflows (`X.run`) registered, so that it
    recovers the workflows `DBOSAgent` started (ours' or pydantic-ai's); bound before `DBOS.launch()`."""
    from pydantic_ai import Agent

    from durable_dbos import DBOSDurability

    own = agent._function_toolset  # the agent's own tools: the twin gets them as its own, with the same id
    twin: Any = Agent(
        agent.model,
        name=agent.name,
        deps_type=agent.deps_type,
        tools=list(own.tools.values()),
        toolsets=[toolset for toolset in agent.toolsets if toolset is not own],
        capabilities=[DBOSDurability(register_legacy_workflows=True)],
    )
    DBOSDurability.from_agent(twin)
    return twin


async def _dbos(args: argparse.Namespace) -> None:
    from dbos import DBOS, SetWorkflowID, WorkflowHandleAsync
    from pydantic_ai.run import AgentRunResult

    from durable_dbos import DBOSAgent
    from durable_dbos.testing import dbos_session

    # By default the fixed version of the tests; `computed` leaves it to DBOS (a hash of the workflows' source code).
    version: Any = None if args.app_version == 'computed' else args.app_version
    config: Any = {'application_version': version} if args.app_version else None
    with dbos_session(args.db, app_name='durable-crash', reset=False, config=config) as launch:
        dbos_agent: Any
        prompt = CRASH_PROMPT
        if args.stream_out:  # the stream-out kill scenarios: the agent publishes live events
            from .stream_crash_agent import STREAM_CRASH_PROMPT, STREAM_CRASH_TOPIC, stream_crash_agent

            dbos_agent = DBOSAgent(stream_crash_agent, event_stream_topic=STREAM_CRASH_TOPIC)
            prompt = STREAM_CRASH_PROMPT
        else:
            agent: Any = crash_agent
            if args.agent == 'mcp':  # the migration tests' kill in an MCP unit
                from .mcp_crash_agent import mcp_crash_agent

                agent = mcp_crash_agent
            if args.wrapper == 'reference':  # pydantic-ai's own wrapper: the migration tests start or finish runs on it
                from .reference_dbos import reference_dbos_agent

                dbos_agent = reference_dbos_agent(agent)
            elif args.wrapper == 'capability':  # ours' capability form, taking over the wrappers' workflows
                dbos_agent = _capability_twin(agent)
            else:
                dbos_agent = DBOSAgent(agent, function_tool_steps=args.function_tool_steps == 'on')
        launch()
        if args.recover:
            # `DBOS.launch()` has already resumed the pending workflow; wait for it.
            handle: WorkflowHandleAsync[AgentRunResult[str]] = await DBOS.retrieve_workflow_async(args.workflow_id)
            output = (await handle.get_result()).output
        else:
            with SetWorkflowID(args.workflow_id):
                output = (await dbos_agent.run(prompt, deps=CrashDeps())).output
        _write_result(args.result, output)


async def _prefect(args: argparse.Namespace) -> None:
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.flow_engine import run_flow_async
    from prefect.states import Scheduled

    from .prefect_crash import crash_flow, stream_crash_flow
    from .stream_crash_agent import STREAM_CRASH_PROMPT

    run_flow, prompt = (stream_crash_flow, STREAM_CRASH_PROMPT) if args.stream_out else (crash_flow, CRASH_PROMPT)
    flow_run_id = UUID(args.flow_run_id)
    async with get_client() as client:
        if args.recover:
            # The killed process left the flow run Running: put it back in the queue as a worker's retry would.
            await client.set_flow_run_state(flow_run_id, Scheduled(), force=True)
        flow_run = await client.read_flow_run(flow_run_id)
    output = await run_flow_async(run_flow, flow_run=flow_run, parameters={'prompt': prompt, 'factor': 7})
    _write_result(args.result, str(output))


def _runs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The `--run TAG=ID` pairs."""
    return [(tag, run_id) for tag, _, run_id in (item.partition('=') for item in args.run)]


async def _dbos_many(args: argparse.Namespace) -> None:
    from dbos import DBOS, SetWorkflowID, WorkflowHandleAsync
    from dbos._error import DBOSNonExistentWorkflowError
    from pydantic_ai.run import AgentRunResult

    from durable_dbos import DBOSAgent
    from durable_dbos.testing import dbos_session

    with dbos_session(args.db, app_name='durable-crash', reset=False) as launch:
        dbos_agent = DBOSAgent(crash_agent)
        launch()  # in a recovering worker, this resumes every pending workflow

        async def one(tag: str, workflow_id: str) -> None:
            if args.recover:
                try:
                    handle: WorkflowHandleAsync[AgentRunResult[str]] = await DBOS.retrieve_workflow_async(workflow_id)
                    output = (await handle.get_result()).output
                except DBOSNonExistentWorkflowError:
                    output = None  # killed before the workflow was written: start it as the first worker would
            else:
                output = None
            if output is None:
                with SetWorkflowID(workflow_id):
                    output = (await dbos_agent.run(crash_prompt(tag), deps=CrashDeps())).output
            _write_result(str(Path(args.results) / f'{tag}.json'), output)

        await asyncio.gather(*(one(tag, workflow_id) for tag, workflow_id in _runs(args)))


async def _prefect_many(args: argparse.Namespace) -> None:
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError
    from prefect.flow_engine import run_flow_async
    from prefect.states import Scheduled, get_state_result

    from .prefect_crash import crash_flow

    async def attempt(tag: str, flow_run_id: UUID, reschedule: bool) -> str:
        async with get_client() as client:
            flow_run = await client.read_flow_run(flow_run_id)
            if reschedule and flow_run.state is not None and flow_run.state.is_completed():
                # Completed before the kill, its output not yet written: read the persisted result.
                return str(await get_state_result(flow_run.state))
            if reschedule:
                # The killed process left the flow run Running: put it back in the queue as a worker's retry would.
                await client.set_flow_run_state(flow_run_id, Scheduled(), force=True)
                flow_run = await client.read_flow_run(flow_run_id)
        parameters = {'prompt': crash_prompt(tag), 'factor': 7}
        return str(await run_flow_async(crash_flow, flow_run=flow_run, parameters=parameters))

    async def one(tag: str, flow_run_id: UUID) -> None:
        for rerun in range(SERVER_ERROR_RERUNS + 1):
            try:
                output = await attempt(tag, flow_run_id, reschedule=args.recover or rerun > 0)
            except PrefectHTTPStatusError as error:
                # The server failed the flow run (503s of the ephemeral server under load, after the client's own
                # retries): a deployment would run it again, and so does this worker, saying so (the round counts
                # these lines). Any other failure, and a 4xx, is the run's and ends the worker.
                if rerun == SERVER_ERROR_RERUNS or error.response.status_code < 500:
                    raise
                print(f'{SERVER_ERROR_RERUN_LINE} {tag}: {error!r}', file=sys.stderr, flush=True)
                continue
            _write_result(str(Path(args.results) / f'{tag}.json'), output)
            return

    await asyncio.gather(*(one(tag, UUID(flow_run_id)) for tag, flow_run_id in _runs(args)))


def _send_prefect_events() -> None:
    """Send the task run states Prefect still holds (events, sent from a background thread) before `os._exit`.

    Without it a worker that finished its runs exited with the states of its last tasks unsent: the server never
    recorded them, and the kill suite found finished runs whose records lacked a unit.
    """
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all(timeout=60)


def main() -> None:
    """Parse the arguments and run the worker; exit without interpreter teardown (see ENGINES.md)."""
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest='engine', required=True)
    temporal = sub.add_parser('temporal')
    temporal.add_argument('--address', required=True)
    temporal.add_argument('--namespace', default='default')
    temporal.add_argument('--task-queue', required=True)
    temporal.add_argument('--ready', required=True)
    temporal.add_argument(
        '--migration', choices=['ours', 'reference'], help='run only the migration workflow, on this wrapper'
    )
    dbos = sub.add_parser('dbos')
    dbos.add_argument('--db', required=True)
    dbos.add_argument('--workflow-id', required=True)
    dbos.add_argument('--result', required=True)
    dbos.add_argument('--recover', action='store_true')
    dbos.add_argument('--wrapper', choices=['ours', 'reference', 'capability'], default='ours')
    dbos.add_argument('--function-tool-steps', choices=['on', 'off'], default='on')
    dbos.add_argument('--app-version', default='', help="`computed`, a version, or empty for the tests' fixed one")
    dbos.add_argument('--stream-out', action='store_true', help='run the stream crash agent (live events)')
    dbos.add_argument('--agent', choices=['crash', 'mcp'], default='crash', help='`mcp`: the MCP crash agent')
    prefect = sub.add_parser('prefect')
    prefect.add_argument('--flow-run-id', required=True)
    prefect.add_argument('--result', required=True)
    prefect.add_argument('--recover', action='store_true')
    prefect.add_argument('--stream-out', action='store_true', help='run the stream crash flow (live events)')
    for name in ('dbos-many', 'prefect-many'):
        many = sub.add_parser(name)
        if name == 'dbos-many':
            many.add_argument('--db', required=True)
        many.add_argument('--run', action='append', required=True, help='TAG=WORKFLOW_ID or TAG=FLOW_RUN_ID')
        many.add_argument('--results', required=True)
        many.add_argument('--recover', action='store_true')
    args = parser.parse_args()
    runners = {
        'temporal': _temporal,
        'dbos': _dbos,
        'prefect': _prefect,
        'dbos-many': _dbos_many,
        'prefect-many': _prefect_many,
    }
    runner = runners[args.engine]
    code = 0
    try:
        asyncio.run(runner(args))
    except BaseException as error:
        print(f'crash worker failed: {error!r}', file=sys.stderr)
        if getattr(args, 'result', None):  # the test reads how the run failed
            Path(args.result).write_text(json.dumps({'error': f'{type(error).__name__}: {error}'}), encoding='utf-8')
        code = 1
    if args.engine.startswith('prefect'):
        _send_prefect_events()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == '__main__':
    main()
