"""Switching between pydantic-ai's `PrefectAgent` (the reference) and ours with a flow run in flight, on Prefect.

A user's flow runs the crash agent (`crash_agent.py`): three model requests, tools a and b in parallel, then tool c
(or, for the runs killed in an MCP unit, whose tags end in `-mcp`, the MCP crash agent of `mcp_crash_agent.py`).
The flow is the same for both wrappers but for the import, as after a migration (or a rollback). A first process
runs it on one wrapper and is killed by the side channel inside a model request (`start model-2`) or a tool call
(`start call-c`); a second process puts the crashed flow run back in the queue, as a Prefect worker's retry would, and
runs it again on the same or the other wrapper. The test then compares the calls the second process started (side
channel) with what Prefect recorded: the agent's subflow runs under the flow run and the state history of each of
their task runs (a `Completed` state is an execution, a `Cached` one a result served from the cache).

`python -m harness.prefect_migration kill|recover --run TAG=WRAPPER:FLOW_RUN_ID[:KILL_AT] ... --results DIR` (with
`tests-integration` on `PYTHONPATH` and the Prefect server in the environment); every cell of the table runs in the
same two processes, so the whole table costs two interpreter starts:

- `kill` forks one child per run after the imports; each child runs its flow run on WRAPPER, writes its side channel
  to `DIR/TAG.calls.jsonl` and kills itself at line KILL_AT. The children's exit codes go to `DIR/kill.json`.
- `recover` reschedules every run and re-runs them all concurrently in this process, each on its WRAPPER (side
  channel `DIR/recover.calls.jsonl`, lines tagged by run); each output, or error, goes to `DIR/TAG.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import signal
import subprocess
import sys
import warnings
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from .crash_agent import KILL_AT_ENV, LOG_ENV, CrashDeps, crash_agent, crash_prompt

__all__ = (
    'MCP_MIGRATION_FLOW_NAME',
    'MIGRATION_FLOW_NAME',
    'AgentKind',
    'agent_kind',
    'SubflowRecord',
    'Wrapper',
    'create_migration_runs',
    'migration_flow',
    'read_subflows',
    'run_migration_step',
)

HERE = Path(__file__).resolve().parent
Wrapper = Literal['ours', 'reference']
MIGRATION_FLOW_NAME = 'crash agent migration run'
WORKER_TIMEOUT = 240.0


AgentKind = Literal['crash', 'mcp']
MCP_MIGRATION_FLOW_NAME = 'mcp crash agent migration run'


def agent_kind(tag: str) -> AgentKind:
    """The agent of run `tag`: the MCP crash agent for the runs killed in an MCP unit (tags ending in `-mcp`)."""
    return 'mcp' if tag.endswith('-mcp') else 'crash'


def _agent(wrapper: Wrapper, kind: AgentKind) -> Any:
    agent: Any = crash_agent
    if kind == 'mcp':
        from .mcp_crash_agent import mcp_crash_agent

        agent = mcp_crash_agent
    if wrapper == 'reference':
        from .reference_prefect import reference_prefect_agent

        return reference_prefect_agent(agent)
    from durable_prefect import PrefectAgent

    return PrefectAgent(agent)


def migration_flow(wrapper: Wrapper, kind: AgentKind = 'crash') -> Any:
    """The user's flow, its agent (`kind`) wrapped by `wrapper`: the same name and parameters on both."""
    from prefect import flow

    agent = _agent(wrapper, kind)

    async def crash_agent_migration_run(prompt: str, factor: int) -> str:
        result = await agent.run(prompt, deps=CrashDeps(factor=factor))
        return str(result.output)

    name = MCP_MIGRATION_FLOW_NAME if kind == 'mcp' else MIGRATION_FLOW_NAME
    return flow(name=name, persist_result=True)(crash_agent_migration_run)


def _parameters(tag: str) -> dict[str, Any]:
    return {'prompt': crash_prompt(tag), 'factor': 7}


async def create_migration_runs(tags: list[str]) -> dict[str, str]:
    """Create one flow run of the migration flow per tag (on the server of the current settings): tag -> id."""
    from prefect.client.orchestration import get_client

    # Only the flows' names and parameters are used: the same for both wrappers.
    kinds: set[AgentKind] = {agent_kind(tag) for tag in tags}
    flows = {kind: migration_flow('ours', kind) for kind in kinds}
    async with get_client() as client:
        return {
            tag: str((await client.create_flow_run(flows[agent_kind(tag)], parameters=_parameters(tag))).id)
            for tag in tags
        }


def run_migration_step(
    step: Literal['kill', 'recover'], runs: dict[str, str], results: Path, env: dict[str, str]
) -> int:
    """Run `step` in a worker subprocess (its own session, killed whole on a timeout); its exit code.

    `runs` maps a tag to `WRAPPER:FLOW_RUN_ID` (`recover`) or `WRAPPER:FLOW_RUN_ID:KILL_AT` (`kill`).
    """
    args = [sys.executable, '-m', 'harness.prefect_migration', step, '--results', str(results)]
    for tag, run in runs.items():
        args += ['--run', f'{tag}={run}']
    full_env = {**os.environ, **env, 'PYTHONPATH': str(HERE.parent)}
    with (results / f'{step}.out').open('w', encoding='utf-8') as output:
        process = subprocess.Popen(
            args, env=full_env, cwd=HERE.parent, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            return process.wait(WORKER_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise


@dataclass
class SubflowRecord:
    """One run of the agent's own flow (`crash_agent Run`) under the user's flow run, as Prefect recorded it."""

    state: str
    """The subflow run's state name (`Running` for one whose process was killed and that nobody ended)."""
    executed: dict[str, int] = field(default_factory=dict[str, int])
    """Task name -> `Completed` states (executions) of its task runs recorded by the re-run."""
    cached: dict[str, int] = field(default_factory=dict[str, int])
    """Task name -> `Cached` states (results served from the cache) of its task runs recorded by the re-run."""


def _task_kind(name: str) -> str:
    # Task run names are `<task name>-<dynamic key>`; the task name says what ran (`Model Request: ...`, `Call Tool:
    # crunch`, `Handle Stream Events`, ...).
    return name.rsplit('-', 1)[0]


async def read_subflows(
    flow_run_id: str, rerun_since: float, calls: int, *, settle_seconds: float = 60
) -> list[SubflowRecord]:
    """The agent subflow runs of the user's flow run `flow_run_id`, oldest first, with what the re-run recorded.

    Only task run states stamped after `rerun_since` (`time.time()` when the re-run started) count. Task run states
    reach the API through events, asynchronously: this waits (up to `settle_seconds`) until the re-run's `calls`
    calls have each recorded a `Completed` or `Cached` state.

    """
    import time
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort

    deadline = time.monotonic() + settle_seconds
    async with get_client() as client:
        while True:
            subflows = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[UUID(flow_run_id)])
                ),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
            )
            records: list[SubflowRecord] = []
            for subflow in subflows:
                record = SubflowRecord(subflow.state.name or '' if subflow.state is not None else '')
                task_runs = await client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[subflow.id]))
                )
                for task_run in task_runs:
                    kind = _task_kind(task_run.name)
                    for state in await client.read_task_run_states(task_run.id):
                        if state.timestamp.timestamp() < rerun_since:
                            continue
                        if state.name in ('Completed', 'Cached'):
                            counts = record.executed if state.name == 'Completed' else record.cached
                            counts[kind] = counts.get(kind, 0) + 1
                records.append(record)
            recorded = sum(sum(r.executed.values()) + sum(r.cached.values()) for r in records)
            if recorded >= calls or time.monotonic() > deadline:
                return records
            await asyncio.sleep(0.2)


def _write(path: Path, value: dict[str, Any]) -> None:
    path.write_text(json.dumps(value), encoding='utf-8')


async def _run_one(flow: Any, tag: str, flow_run_id: str, results: Path, *, reschedule: bool) -> None:
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.flow_engine import run_flow_async
    from prefect.states import Scheduled

    async with get_client() as client:
        if reschedule:
            # The killed process left the flow run Running: put it back in the queue as a worker's retry would.
            await client.set_flow_run_state(UUID(flow_run_id), Scheduled(), force=True)
        flow_run = await client.read_flow_run(UUID(flow_run_id))
    try:
        output = await run_flow_async(flow, flow_run=flow_run, parameters=_parameters(tag))
    except Exception as error:  # the test reads how the run failed
        _write(results / f'{tag}.json', {'error': f'{type(error).__name__}: {error}'})
    else:
        _write(results / f'{tag}.json', {'output': str(output)})


def _kill(flows: dict[tuple[str, AgentKind], Any], runs: dict[str, str], results: Path) -> None:
    children: dict[int, str] = {}
    for tag, run in runs.items():
        wrapper, flow_run_id, kill_at = run.split(':')
        flow = flows[wrapper, agent_kind(tag)]
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child ends in os._exit
            os.environ[LOG_ENV] = str(results / f'{tag}.calls.jsonl')
            os.environ[KILL_AT_ENV] = kill_at
            code = _in_child(functools.partial(_run_one, flow, tag, flow_run_id, results, reschedule=False))
            os._exit(code)
        children[pid] = tag
    codes: dict[str, int] = {}
    while children:
        pid, status = os.wait()
        codes[children.pop(pid)] = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    _write(results / 'kill.json', codes)


def _in_child(run: Callable[[], Coroutine[Any, Any, None]]) -> int:
    try:
        asyncio.run(run())
    except BaseException as error:
        print(f'migration worker failed: {error!r}', file=sys.stderr)
        return 1
    return 0


async def _recover(flows: dict[tuple[str, AgentKind], Any], runs: dict[str, str], results: Path) -> None:
    from durable_prefect import UnfinishedForeignAgentRunWarning

    os.environ[LOG_ENV] = str(results / 'recover.calls.jsonl')
    os.environ.pop(KILL_AT_ENV, None)
    # Ours warns when a re-run leaves an agent run of other code behind; the messages name the flow runs, so the test
    # tells the runs apart (they run concurrently in this process).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always', UnfinishedForeignAgentRunWarning)
        await asyncio.gather(
            *(
                _run_one(flows[wrapper, agent_kind(tag)], tag, flow_run_id, results, reschedule=True)
                for tag, (wrapper, flow_run_id) in ((tag, run.split(':')) for tag, run in runs.items())
            )
        )
    found = [str(w.message) for w in caught if issubclass(w.category, UnfinishedForeignAgentRunWarning)]
    (results / 'recover.warnings.json').write_text(json.dumps(found), encoding='utf-8')


def _send_pending_events() -> None:
    # Task run states travel as events, sent by a background worker: send them before the process exits without
    # teardown, so that the test reads every state of the re-run.
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all(timeout=60)


def main() -> None:
    """Parse the arguments and run the step; exit without interpreter teardown (see ENGINES.md)."""
    parser = argparse.ArgumentParser()
    parser.add_argument('step', choices=['kill', 'recover'])
    parser.add_argument('--run', action='append', required=True, help='TAG=WRAPPER:FLOW_RUN_ID[:KILL_AT]')
    parser.add_argument('--results', required=True)
    args = parser.parse_args()
    runs = {tag: run for tag, _, run in (item.partition('=') for item in args.run)}
    results = Path(args.results)
    # Both wrappers wrap the agents in this one process (nothing registers them globally), as each flow needs.
    needed: set[tuple[str, AgentKind]] = {(run.split(':')[0], agent_kind(tag)) for tag, run in runs.items()}
    flows: dict[tuple[str, AgentKind], Any] = {
        (wrapper, kind): migration_flow(cast(Wrapper, wrapper), kind) for wrapper, kind in sorted(needed)
    }
    code = 0
    try:
        if args.step == 'kill':
            _kill(flows, runs, results)
        else:
            asyncio.run(_recover(flows, runs, results))
            _send_pending_events()
    except BaseException as error:
        print(f'migration worker failed: {error!r}', file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == '__main__':
    main()
