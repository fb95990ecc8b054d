"""Fail-over runs: two worker processes, six runs spread over them, one worker killed with SIGKILL mid-run.

Each engine's `failover_*` function starts the workers (`harness/failover_worker.py`, each in a process group of its
own), starts the runs, waits until every run holds its last tool call (3 on each worker: each worker takes at most 3
at once), kills one worker's whole process group, releases the held calls, recovers the killed worker's runs the way
the engine documents it, and returns a [`FailoverResult`][harness.failover_run.FailoverResult]: the outputs, which
worker finished each run, and the recorded units that ran again, counted from the call log and from the engine's own
records (Temporal histories, DBOS steps, Prefect task-run states).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from .failover_agent import (
    HELD_LABEL,
    LOG_ENV,
    RELEASE_ENV,
    UNITS_PER_RUN,
    FailoverCall,
    expected_output,
    read_calls,
    recorded_units,
    repeated_units,
)

__all__ = ('RUNS', 'FailoverResult', 'failover_dbos', 'failover_prefect', 'failover_temporal')

HERE = Path(__file__).resolve().parent.parent
RUNS = tuple(f'r{index}' for index in range(1, 7))
"""The runs of one fail-over test: six, three per worker."""
WAIT_SECONDS = 600.0
"""Generous: each Prefect flow run starts a fresh Python process; six of them took 160 s at a load average of 30 on
2 cores (and more than 300 s once). On a quiet machine every wait here takes seconds."""


@dataclass
class FailoverResult:
    """What one fail-over test saw."""

    engine: str
    workers: int
    runs: tuple[str, ...]
    killed: bool = False
    """The victim's process group died of SIGKILL."""
    held: dict[str, list[str]] = field(default_factory=dict[str, list[str]])
    """Per worker (`victim`, `survivor`): the runs whose last tool call it held at the kill."""
    outputs: dict[str, str | None] = field(default_factory=dict[str, str | None])
    finished_by: dict[str, str] = field(default_factory=dict[str, str])
    """Per run: the worker (`victim`, `survivor`, `replacement`) that made its last model request."""
    recorded: dict[str, list[str]] = field(default_factory=dict[str, list[str]])
    """Per run: the units recorded before the kill."""
    repeated: dict[str, list[str]] = field(default_factory=dict[str, list[str]])
    """Per run: recorded units that started again after the kill (call log)."""
    engine_repeats: dict[str, int] = field(default_factory=dict[str, int])
    """Per run: recorded units executed again according to the engine's own records."""
    notes: dict[str, Any] = field(default_factory=dict[str, Any])
    """Engine figures for the report (attempts, recovery attempts, executor ids, seconds)."""

    @property
    def victim_runs(self) -> list[str]:
        """The runs held by the killed worker."""
        return self.held.get('victim', [])

    @property
    def finished(self) -> list[str]:
        """The runs that ended with the output of an uninterrupted run."""
        return [run for run in self.runs if self.outputs.get(run) == expected_output(run)]

    def summary(self) -> str:
        """One line for the results table."""
        return (
            f'{self.engine}: workers={self.workers} runs={len(self.runs)} killed={self.killed} '
            f'victim runs={self.victim_runs} finished={len(self.finished)} finished_by={self.finished_by} '
            f'recorded units={sum(len(units) for units in self.recorded.values())} '
            f'repeated(log)={sum(len(units) for units in self.repeated.values())} '
            f'repeated(engine)={sum(self.engine_repeats.values())} notes={self.notes}'
        )


class Worker:
    """A worker process in a process group of its own (a Prefect flow run is a child process of its worker)."""

    def __init__(self, name: str, args: list[str], workdir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.workdir = workdir
        self.ready_file = workdir / f'{name}.ready'
        self._output = (workdir / f'{name}.log').open('ab')
        full_env = {**os.environ, **env}
        full_env['PYTHONPATH'] = os.pathsep.join([str(HERE), *filter(None, [full_env.get('PYTHONPATH')])])
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'harness.failover_worker', *args, '--ready', str(self.ready_file)],
            cwd=HERE,
            env=full_env,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.group = self.process.pid

    def output_tail(self, size: int = 1500) -> str:
        """The end of the worker's output."""
        if not self._output.closed:
            self._output.flush()
        return (self.workdir / f'{self.name}.log').read_text(encoding='utf-8', errors='replace')[-size:]

    async def wait_ready(self) -> None:
        """Wait until the worker has written its ready file (it polls, or has started its runs)."""
        with anyio.fail_after(WAIT_SECONDS):
            while not self.ready_file.exists():
                if self.process.poll() is not None:
                    raise RuntimeError(f'worker {self.name} exited with {self.process.returncode} before it was ready')
                await anyio.sleep(0.05)

    def kill(self) -> bool:
        """SIGKILL the worker's process group; whether the worker died of it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.group, signal.SIGKILL)
        return self.process.wait(30) == -signal.SIGKILL

    async def stop(self) -> None:
        """SIGTERM the worker, then SIGKILL its process group (children included)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            while self.process.poll() is None and time.monotonic() < deadline:
                await anyio.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.group, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)
        self._output.close()


class Workers:
    """The workers of one test; every one is stopped on exit."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.log = workdir / 'calls.jsonl'
        self.release = workdir / 'release'
        self._env = {**env, LOG_ENV: str(self.log), RELEASE_ENV: str(self.release)}
        self.started: list[Worker] = []

    def start(self, name: str, args: list[str]) -> Worker:
        """Start a worker process named `name`."""
        worker = Worker(name, args, self.workdir, self._env)
        self.started.append(worker)
        return worker

    def name_of(self, group: int) -> str:
        """The name of the worker whose process group is `group`."""
        return next((worker.name for worker in self.started if worker.group == group), str(group))

    async def wait_all_held(self, runs: tuple[str, ...]) -> dict[str, list[str]]:
        """Wait until every run holds its last tool call; the held runs per worker name."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            calls = read_calls(self.log)
            held = _held(calls)
            if set(held) >= set(runs):
                by_worker: dict[str, list[str]] = {}
                for run in sorted(held):
                    by_worker.setdefault(self.name_of(held[run]), []).append(run)
                return by_worker
            for worker in self.started:
                if worker.process.poll() is not None:
                    raise RuntimeError(f'worker {worker.name} exited with {worker.process.returncode}')
            if time.monotonic() > deadline:
                # Say how far the runs got: a slow machine (runs still starting) or a broken one (runs failing).
                started = sorted({call.run for call in calls})
                raise TimeoutError(
                    f'after {WAIT_SECONDS} s, held: {sorted(held)}, runs with a call: {started}; worker output: '
                    + ' | '.join(f'{worker.name}: {worker.output_tail()}' for worker in self.started)
                )
            await anyio.sleep(0.05)

    async def stop_all(self) -> None:
        """Stop every worker started."""
        for worker in self.started:
            await worker.stop()


def _held(calls: list[FailoverCall]) -> dict[str, int]:
    """Runs whose held call has started and not finished, with the worker holding it."""
    held: dict[str, int] = {}
    for call in calls:
        if call.label != HELD_LABEL:
            continue
        if call.kind == 'start':
            held[call.run] = call.worker
        else:
            held.pop(call.run, None)
    return held


@asynccontextmanager
async def _workers(workdir: Path, env: dict[str, str]) -> AsyncGenerator[Workers]:
    workers = Workers(workdir, env)
    try:
        yield workers
    finally:
        await workers.stop_all()


async def _kill(result: FailoverResult, workers: Workers, victim: Worker) -> int:
    """Kill the victim, release the held calls; the index of the first call-log line after the kill."""
    waited = time.monotonic()
    result.held = await workers.wait_all_held(result.runs)
    result.notes['seconds until all held'] = round(time.monotonic() - waited, 1)
    result.killed = victim.kill()
    result.notes['killed at'] = time.monotonic()
    kill_line = len(read_calls(workers.log))
    workers.release.write_text('released', encoding='utf-8')
    return kill_line


def _timing(result: FailoverResult, started: float) -> None:
    killed_at = result.notes.pop('killed at', None)
    if killed_at is not None:
        result.notes['seconds from kill to the end'] = round(time.monotonic() - killed_at, 1)
    result.notes['seconds'] = round(time.monotonic() - started, 1)


def _analyse(result: FailoverResult, workers: Workers, kill_line: int) -> None:
    calls = read_calls(workers.log)
    before, after = calls[:kill_line], calls[kill_line:]
    for run in result.runs:
        recorded = recorded_units(before, run)
        result.recorded[run] = sorted(recorded)
        result.repeated[run] = repeated_units(after, run, recorded)
        last = [call for call in calls if call.run == run and call.kind == 'done' and call.label == 'model-3']
        if last:
            result.finished_by[run] = workers.name_of(last[-1].worker)


async def _wait_for(
    check: Callable[[], Awaitable[bool]],
    what: str,
    timeout: float = WAIT_SECONDS,
    describe: Callable[[], Awaitable[str]] | None = None,
) -> None:
    """Wait until `check()` holds; on timeout, say what was awaited and, with `describe`, how far it got."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            progress = f': {await describe()}' if describe is not None else ''
            raise TimeoutError(f'waited {timeout} s for {what}{progress}')
        await anyio.sleep(0.2)


# --- Temporal -----------------------------------------------------------------------------------------------------


async def failover_temporal(client: Any, workdir: Path) -> FailoverResult:
    """Two workers on one task queue; the victim's activities time out and are retried on the survivor.

    Args:
        client: A client (with `PydanticAIPlugin`) of a running Temporal server.
        workdir: A fresh directory for the call log and the workers' output.
    """
    from temporalio.api.enums.v1 import EventType
    from temporalio.client import Client, WorkflowHandle

    from .failover_agent import FailoverDeps, prompt_for
    from .failover_temporal import FAILOVER_WORKFLOW_NAME

    temporal: Client = client
    task_queue = f'failover-{uuid.uuid4().hex}'
    result = FailoverResult('temporal', workers=2, runs=RUNS)
    started = time.monotonic()
    args = ['temporal', '--address', temporal.service_client.config.target_host, '--namespace', temporal.namespace]
    args += ['--task-queue', task_queue]
    async with _workers(workdir, {}) as workers:
        victim, survivor = workers.start('victim', args), workers.start('survivor', args)
        await victim.wait_ready()
        await survivor.wait_ready()
        handles: dict[str, WorkflowHandle[Any, str]] = {}
        for run in RUNS:
            handles[run] = await temporal.start_workflow(
                FAILOVER_WORKFLOW_NAME,
                args=[prompt_for(run), FailoverDeps(run=run)],
                id=f'failover-{run}-{uuid.uuid4().hex}',
                task_queue=task_queue,
                result_type=str,
            )
        kill_line = await _kill(result, workers, victim)
        with anyio.fail_after(WAIT_SECONDS):
            for run, handle in handles.items():
                result.outputs[run] = await handle.result()
        _analyse(result, workers, kill_line)
    attempts: dict[str, int] = {}
    for run, handle in handles.items():
        history = await handle.fetch_history()
        scheduled = sum(event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED for event in history.events)
        completed = sum(event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED for event in history.events)
        # One activity per unit, completed once: a recorded unit executed again would be scheduled (and run) again.
        result.engine_repeats[run] = max(0, scheduled - UNITS_PER_RUN) + max(0, completed - UNITS_PER_RUN)
        attempts[run] = max(
            (
                event.activity_task_started_event_attributes.attempt
                for event in history.events
                if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
            ),
            default=0,
        )
    result.notes['max attempt per run'] = attempts
    _timing(result, started)
    return result


# --- DBOS ---------------------------------------------------------------------------------------------------------


async def failover_dbos(database_url: str, workdir: Path) -> FailoverResult:
    """Two DBOS executors (`failover-victim`, `failover-survivor`) on one PostgreSQL system database.

    After the kill, the operator restarts the victim's executor ID (a new process launched with the same
    `executor_id`), which is what DBOS documents for recovery without Conductor: an executor recovers, at launch,
    the pending workflows tagged with its own ID.
    """
    from dbos import DBOSClient

    result = FailoverResult('dbos', workers=2, runs=RUNS)
    started = time.monotonic()
    results = workdir / 'results'
    results.mkdir()

    def args(executor: str, runs: tuple[str, ...]) -> list[str]:
        return ['dbos', '--db', database_url, '--executor-id', f'failover-{executor}', '--runs', ','.join(runs)]

    victim_runs, survivor_runs = RUNS[:3], RUNS[3:]
    async with _workers(workdir, {}) as workers:
        # One after the other: the first launch creates the system database's schema.
        victim = workers.start('victim', [*args('victim', victim_runs), '--results', str(results)])
        await victim.wait_ready()
        survivor = workers.start('survivor', [*args('survivor', survivor_runs), '--results', str(results)])
        await survivor.wait_ready()
        kill_line = await _kill(result, workers, victim)

        async def survivor_done() -> bool:
            return all((results / f'{run}.json').exists() for run in survivor_runs)

        await _wait_for(survivor_done, 'the survivor finished its runs')
        # The operator's action: restart the dead executor's ID; its launch recovers the pending workflows.
        workers.start('replacement', [*args('victim', victim_runs), '--results', str(results)])

        async def all_done() -> bool:
            return all((results / f'{run}.json').exists() for run in RUNS)

        await _wait_for(all_done, 'every run finished')
        for run in RUNS:
            result.outputs[run] = json.loads((results / f'{run}.json').read_text(encoding='utf-8'))['output']
        _analyse(result, workers, kill_line)
    client = DBOSClient(system_database_url=database_url)
    try:
        steps = {
            run: [step['function_name'] for step in client.list_workflow_steps(run, load_output=False)] for run in RUNS
        }
        statuses = {status.workflow_id: status for status in client.list_workflows(workflow_ids=list(RUNS))}
    finally:
        client.destroy()
    # A step executed again would be recorded twice or shift the steps after it: each run must have recorded the
    # steps of an uninterrupted run (the survivor's), in the same order.
    reference = Counter(steps[survivor_runs[0]])
    for run in RUNS:
        counts = Counter(steps[run])
        result.engine_repeats[run] = sum(max(0, counts[name] - reference[name]) for name in counts)
    result.notes['steps as uninterrupted'] = all(steps[run] == steps[survivor_runs[0]] for run in RUNS)
    result.notes['steps per run'] = {run: len(names) for run, names in steps.items()}
    result.notes['executor'] = {run: statuses[run].executor_id for run in RUNS}
    _timing(result, started)
    return result


# --- Prefect ------------------------------------------------------------------------------------------------------


def prefect_env(home: Path) -> dict[str, str]:
    """Environment of the serving processes: the crash workers' (the session's server, shared result storage), plus
    flow-run heartbeats."""
    from .crash_run import prefect_worker_env

    return {
        **prefect_worker_env(home),
        # The minimum: the zombie automation fires `ZOMBIE_WITHIN_SECONDS` after the last heartbeat of a dead run
        # (the second name is the setting's name before Prefect 3.6).
        'PREFECT_FLOWS_HEARTBEAT_FREQUENCY': '30',
        'PREFECT_RUNNER_HEARTBEAT_FREQUENCY': '30',
    }


ZOMBIE_WITHIN_SECONDS = 60
"""How long after a flow run's last event the zombie automation marks it Crashed: two heartbeat intervals, so that
a live run whose heartbeat thread is slowed down by a loaded machine is not taken for a zombie."""


async def failover_prefect(home: Path, workdir: Path) -> FailoverResult:
    """Two processes serving one deployment; the victim's flow runs are found by Prefect's zombie automation.

    The automation is the one of Prefect's "Detect zombie flows" guide (flow-run heartbeats expected within a
    window, else `Crashed`), scoped to the test's deployment; the operator then retries each crashed run (a forced
    `AwaitingRetry` state, as the UI's Retry does) and the survivor, polling the deployment, re-runs it: the same
    flow run, so its subflow and completed tasks are found again and the tasks are cache hits.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId
    from prefect.client.schemas.objects import StateType
    from prefect.states import AwaitingRetry

    from .failover_prefect import FAILOVER_DEPLOYMENT, FAILOVER_FLOW_NAME

    result = FailoverResult('prefect', workers=2, runs=RUNS)
    started = time.monotonic()
    async with _workers(workdir, prefect_env(home)) as workers, get_client() as client:
        victim, survivor = workers.start('victim', ['prefect']), workers.start('survivor', ['prefect'])
        await victim.wait_ready()
        await survivor.wait_ready()
        deployment = await client.read_deployment_by_name(f'{FAILOVER_FLOW_NAME}/{FAILOVER_DEPLOYMENT}')
        async with _zombie_automation(deployment.id):
            flow_runs = {
                run: (await client.create_flow_run_from_deployment(deployment.id, parameters={'run': run})).id
                for run in RUNS
            }
            kill_line = await _kill(result, workers, victim)
            killed_at = time.time()
            crashed: list[str] = []

            async def settled() -> bool:
                # The survivor's runs complete; the victim's are marked Crashed by the automation, then retried.
                for run, flow_run_id in flow_runs.items():
                    state = (await client.read_flow_run(flow_run_id)).state
                    if state is not None and state.type == StateType.CRASHED and run not in crashed:
                        crashed.append(run)
                        result.notes.setdefault(
                            'seconds from kill to the first Crashed', round(time.time() - killed_at, 1)
                        )
                        await client.set_flow_run_state(flow_run_id, AwaitingRetry(), force=True)
                states = [(await client.read_flow_run(flow_run_id)).state for flow_run_id in flow_runs.values()]
                return all(state is not None and state.is_final() and not state.is_crashed() for state in states)

            async def state_histories() -> str:
                # Each run's state history, seconds from the kill: which run the automation or a worker missed.
                lines: list[str] = []
                for run, flow_run_id in flow_runs.items():
                    history = sorted(await client.read_flow_run_states(flow_run_id), key=lambda state: state.timestamp)
                    steps = ' '.join(
                        f'{state.name}@{state.timestamp.timestamp() - killed_at:+.0f}' for state in history
                    )
                    lines.append(f'{run} ({flow_run_id}): {steps}')
                return (
                    f'crashed={sorted(crashed)}; '
                    + '; '.join(lines)
                    + ' | '
                    + ' | '.join(f'{worker.name}: {worker.output_tail(600)}' for worker in workers.started)
                )

            await _wait_for(
                settled,
                'every flow run completed',
                timeout=WAIT_SECONDS + ZOMBIE_WITHIN_SECONDS,
                describe=state_histories,
            )
            result.notes['crashed by the automation'] = sorted(crashed)
            for run, flow_run_id in flow_runs.items():
                state = (await client.read_flow_run(flow_run_id)).state
                result.outputs[run] = str(await state.result()) if state is not None and state.is_completed() else None
        _analyse(result, workers, kill_line)
        for run, flow_run_id in flow_runs.items():
            subflows = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id]))
            )
            ids = [flow_run_id, *(subflow.id for subflow in subflows)]
            task_runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
            repeats = 0
            for task_run in task_runs:
                states = sorted(await client.read_task_run_states(task_run.id), key=lambda state: state.timestamp)
                completed = next((state.timestamp for state in states if state.type == StateType.COMPLETED), None)
                # Recorded before the kill, and Running again afterwards: executed twice.
                if completed is not None and completed.timestamp() < killed_at:
                    repeats += any(state.type == StateType.RUNNING and state.timestamp > completed for state in states)
            result.engine_repeats[run] = repeats
    _timing(result, started)
    return result


@asynccontextmanager
async def _zombie_automation(deployment_id: Any) -> AsyncGenerator[None]:
    """The zombie-flow automation of Prefect's guide, for this deployment's flow runs; deleted on exit."""
    from datetime import timedelta

    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    crash = ChangeFlowRunState.model_validate(
        {'state': StateType.CRASHED, 'message': 'Flow run marked as crashed due to missing heartbeats.'}
    )
    automation = await Automation(
        name=f'Crash zombie flows of {deployment_id}',
        trigger=EventTrigger(
            after={'prefect.flow-run.heartbeat'},
            expect={'prefect.flow-run.*'},
            match=ResourceSpecification({'prefect.resource.id': ['prefect.flow-run.*']}),
            match_related=ResourceSpecification({'prefect.resource.id': [f'prefect.deployment.{deployment_id}']}),
            for_each={'prefect.resource.id'},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=ZOMBIE_WITHIN_SECONDS),
        ),
        actions=[crash],
    ).acreate()
    try:
        yield
    finally:
        await automation.adelete()
