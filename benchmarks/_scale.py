"""`just bench-scale`: runs/s of one engine server with 1, 2 and 4 worker processes (scale-out, issue #17 part 3).

Per engine, one server is started (a Temporal dev server; an embedded PostgreSQL server for DBOS), and for each
process count N a fresh set of N worker processes (`benchmarks._scale_worker`, separate OS processes, stopped by
PID) serves one task queue (Temporal) or one DBOS queue. A client in this process then starts all runs of the 13-unit
workload at once and waits for every one; each output is checked.

Reported per engine and N: runs/s, scaling efficiency (runs/s at N / (N x runs/s at 1)), the workers' resident
memory (summed over the N processes) per run in flight at the peak, the workers' CPU per run, and the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ._workload import Workload

ROOT = Path(__file__).resolve().parent.parent
DOCS_PATH = ROOT / 'docs' / 'scaling.md'
BEGIN, END = '<!-- bench-scale:begin -->', '<!-- bench-scale:end -->'
ENGINES = ('temporal', 'dbos', 'prefect')
READY_TIMEOUT_S = 300.0
"""How long a worker process may take to import, connect and start taking work (a loaded 2-core machine is slow)."""
STOP_TIMEOUT_S = 20.0
"""How long a worker may take to shut down after SIGTERM before it is killed."""


@dataclass(frozen=True)
class ScaleOptions:
    """What to measure.

    Attributes:
        processes: The worker-process counts to measure, in order.
        runs: Runs started at once per measurement (all in flight together).
        warmup: Runs started at once before each measurement (imports, sandboxes, connection pools).
        workload: The shape of each run.
        timeout_s: A measurement whose runs are not all done by then fails.
    """

    processes: tuple[int, ...] = (1, 2, 4)
    runs: int = 200
    warmup: int = 20
    workload: Workload = Workload()
    timeout_s: float = 600.0


@dataclass
class ScaleResult:
    """One engine with N worker processes."""

    engine: str
    processes: int
    runs: int
    completed: int = 0
    wrong_outputs: int = 0
    elapsed_s: float = 0.0
    runs_per_s: float = 0.0
    rss_idle_mb: float = 0.0
    """Sum of the workers' RSS after the warm-up, before the timed runs."""
    rss_peak_mb: float = 0.0
    """Highest sum of the workers' RSS sampled while the timed runs were in flight."""
    worker_cpu_s: float = 0.0
    """CPU seconds (user + system) the workers spent during the timed runs, all processes together."""
    server_cpu_s: float = 0.0
    """CPU seconds the engine server's processes spent during the timed runs."""
    server_rss_mb: float = 0.0
    """Highest RSS of the engine server's processes (dev server; PostgreSQL and its backends) during the timed runs."""
    load_before: str = ''
    load_after: str = ''
    runs_per_worker: list[int] = field(default_factory=list[int])
    """Runs each worker process executed (DBOS records the executor of each workflow; empty when not known)."""
    worker_pids: list[int] = field(default_factory=list[int])
    """The worker processes' ids (all stopped by the time the result is reported)."""
    errors: list[str] = field(default_factory=list[str])

    @property
    def rss_per_run_kb(self) -> float:
        """The workers' peak RSS, summed, divided by the runs in flight."""
        return self.rss_peak_mb * 1024 / self.runs if self.runs else 0.0

    @property
    def rss_growth_per_run_kb(self) -> float:
        """What the runs in flight add to the workers' RSS, per run (peak minus idle)."""
        return max(self.rss_peak_mb - self.rss_idle_mb, 0.0) * 1024 / self.runs if self.runs else 0.0

    def to_json(self) -> dict[str, Any]:
        """Everything, derived figures included."""
        return {
            **asdict(self),
            'rss_per_run_kb': self.rss_per_run_kb,
            'rss_growth_per_run_kb': self.rss_growth_per_run_kb,
            'cpu_ms_per_run': self.worker_cpu_s * 1000 / self.completed if self.completed else None,
            'server_cpu_ms_per_run': self.server_cpu_s * 1000 / self.completed if self.completed else None,
        }


# --- processes, memory and CPU from /proc (Linux: the machines this runs on) -------------------------------------


def _load() -> str:
    return ' / '.join(f'{value:.2f}' for value in os.getloadavg())


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


_CLOCK_TICKS = os.sysconf('SC_CLK_TCK') if hasattr(os, 'sysconf') else 100


def _cpu_s(pid: int) -> float:
    try:
        # The command name may hold spaces: the fields after its closing parenthesis are fixed.
        fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    except OSError:
        return 0.0
    # utime + stime, and cutime + cstime: the children a worker waited for (Prefect's flow-run subprocesses).
    return sum(int(value) for value in fields[11:15]) / _CLOCK_TICKS


def _descendants(roots: set[int]) -> set[int]:
    """Every process whose ancestry leads to one of `roots` (the servers this process started, and their children)."""
    parents: dict[int, int] = {}
    for entry in Path('/proc').iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / 'stat').read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(')', 1)[1].split()[1])
    found: set[int] = set()
    frontier = set(roots)
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _processes_mentioning(marker: str) -> set[int]:
    """Processes whose command line contains `marker` (a daemonized server's data directory)."""
    found: set[int] = set()
    for entry in Path('/proc').iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / 'cmdline').read_bytes().decode(errors='replace'):
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


def server_pids(marker: str | None, exclude: set[int]) -> set[int]:
    """The engine server's processes: what this process started, and (daemonized servers such as PostgreSQL, which
    leave our process tree) the processes mentioning `marker`, with their children; `exclude` left out."""
    roots: set[int] = {os.getpid(), *(_processes_mentioning(marker) if marker else ())}
    return (roots | _descendants(roots)) - exclude - {os.getpid()}


class WorkerProcesses:
    """N worker processes of `benchmarks._scale_worker`, each started here and stopped by its PID."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[str]] = []

    @property
    def pids(self) -> list[int]:
        """The workers' process ids."""
        return [process.pid for process in self.processes]

    async def start(self, argv_list: Sequence[Sequence[str]], env: dict[str, str] | None = None) -> None:
        """Start one worker per argument list, the first alone (it may create the database), and wait until each is
        ready."""
        for index, argv in enumerate(argv_list):
            process = subprocess.Popen(
                [sys.executable, '-m', 'benchmarks._scale_worker', *argv],
                cwd=ROOT,
                stdin=subprocess.PIPE,  # closed by us or by our death: the worker then stops (no orphan)
                stdout=subprocess.PIPE,
                stderr=None,
                text=True,
                env=env,
            )
            self.processes.append(process)
            if index == 0:
                await self._wait_ready([process])
        await self._wait_ready(self.processes[1:])

    async def _wait_ready(self, processes: Sequence[subprocess.Popen[str]]) -> None:
        async def one(process: subprocess.Popen[str]) -> None:
            assert process.stdout is not None
            try:
                line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), READY_TIMEOUT_S)
            except TimeoutError:
                raise RuntimeError(f'worker process {process.pid} not ready after {READY_TIMEOUT_S:.0f} s') from None
            if line.strip() != 'ready':
                raise RuntimeError(f'worker process {process.pid} exited before it was ready (code {process.poll()})')

        await asyncio.gather(*(one(process) for process in processes))

    def all_pids(self) -> set[int]:
        """The workers and their child processes (Prefect runs each flow run in a subprocess of its runner)."""
        return set(self.pids) | _descendants(set(self.pids))

    def rss_kb(self) -> int:
        """The resident memory of the workers and their child processes, summed."""
        return sum(_rss_kb(pid) for pid in self.all_pids())

    def cpu_s(self) -> float:
        """The workers' CPU time so far, with that of their children that have exited, summed."""
        return sum(_cpu_s(pid) for pid in self.pids)

    async def stop(self) -> None:
        """SIGTERM each worker by PID, wait for it, SIGKILL the ones still there after `STOP_TIMEOUT_S`, and any
        child process a worker left behind."""
        children = _descendants(set(self.pids))
        for process in self.processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in self.processes:
            try:
                await asyncio.to_thread(process.wait, max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                await asyncio.to_thread(process.wait)
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    stream.close()
        for pid in children:
            with contextlib.suppress(ProcessLookupError):  # it ended with its worker, as it should
                os.kill(pid, signal.SIGKILL)
        self.processes = []


class _Sampler:
    """Samples the workers' summed RSS, and the servers' RSS, until stopped; keeps the peaks."""

    def __init__(self, workers: WorkerProcesses, server_pids: set[int]) -> None:
        self._workers = workers
        self._server_pids = server_pids
        self.peak_kb = 0
        self.server_peak_kb = 0
        self._task: asyncio.Task[None] | None = None

    def _sample(self) -> None:
        self.peak_kb = max(self.peak_kb, self._workers.rss_kb())
        self.server_peak_kb = max(self.server_peak_kb, sum(_rss_kb(pid) for pid in self._server_pids))

    async def _loop(self) -> None:
        while True:
            await asyncio.to_thread(self._sample)
            await asyncio.sleep(0.25)

    def __enter__(self) -> _Sampler:
        self._task = asyncio.ensure_future(self._loop())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self._sample()


# --- engines ------------------------------------------------------------------------------------------------------


class ScaleTarget(ABC):
    """One engine: its server (started by the factory), its worker commands, and a client starting runs at once."""

    engine: str
    server_marker: str | None = None
    """A string in the command line of a server process that left this process's tree (daemonized), if any."""

    @abstractmethod
    def worker_argvs(self, processes: int, runs: int) -> list[list[str]]:
        """The `_scale_worker` arguments of each of `processes` workers of a new measurement."""

    def worker_env(self) -> dict[str, str] | None:
        """The workers' environment (`None`: this process's)."""
        return None

    @abstractmethod
    async def run_all(self, prompt: str, count: int, prefix: str, timeout_s: float) -> tuple[list[str], float]:
        """Start `count` runs at once (ids starting with `prefix`), wait for all; return outputs and elapsed s."""

    async def runs_per_worker(self, prefix: str, count: int, pids: list[int]) -> list[int]:
        """Runs each worker (by process id) executed, when the engine records it (else empty)."""
        return []

    async def close_measurement(self) -> None:  # noqa: B027  (a hook: most engines need nothing)
        """Release what the last measurement's client held."""


class TemporalScale(ScaleTarget):
    """One Temporal dev server; the workers poll one task queue per measurement; the client starts workflows."""

    engine = 'temporal'

    def __init__(self, client: Any, address: str, namespace: str) -> None:
        self._client = client
        self._address = address
        self._namespace = namespace
        self._task_queue = ''

    def worker_argvs(self, processes: int, runs: int) -> list[list[str]]:
        self._task_queue = f'bench-scale-{uuid.uuid4().hex[:8]}'
        argv = ['temporal', '--address', self._address, '--namespace', self._namespace]
        return [[*argv, '--task-queue', self._task_queue] for _ in range(processes)]

    async def run_all(self, prompt: str, count: int, prefix: str, timeout_s: float) -> tuple[list[str], float]:
        start = time.perf_counter()
        handles = await asyncio.gather(
            *(
                self._client.start_workflow(
                    'BenchOursWorkflow', prompt, id=f'{prefix}{index}', task_queue=self._task_queue, result_type=str
                )
                for index in range(count)
            )
        )
        try:
            outputs = await asyncio.wait_for(asyncio.gather(*(handle.result() for handle in handles)), timeout_s)
        except TimeoutError:
            raise RuntimeError(f'the {count} Temporal runs were not all done after {timeout_s:.0f} s') from None
        return list(outputs), time.perf_counter() - start

    async def runs_per_worker(self, prefix: str, count: int, pids: list[int]) -> list[int]:
        from temporalio.api.enums.v1 import EventType

        # A worker's default identity is `{pid}@{host}`: the one that started a run's first workflow task ran it (the
        # run then stays in that worker's cache).
        async def first_worker(workflow_id: str) -> int | None:
            history = await self._client.get_workflow_handle(workflow_id).fetch_history()
            for event in history.events:
                if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                    pid = event.workflow_task_started_event_attributes.identity.split('@', 1)[0]
                    return int(pid) if pid.isdigit() else None
            return None

        owners = await asyncio.gather(*(first_worker(f'{prefix}{index}') for index in range(count)))
        return [owners.count(pid) for pid in pids]


@asynccontextmanager
async def temporal_scale() -> AsyncGenerator[ScaleTarget]:
    """Start a Temporal dev server (stopped on exit) and yield its scale target."""
    from temporalio.client import Client
    from temporalio.testing import WorkflowEnvironment

    from durable_temporal import PydanticAIPlugin

    from ._temporal import _temporal_cli  # pyright: ignore[reportPrivateUsage]  # the bench's own helper

    environment = WorkflowEnvironment.start_local(  # pyright: ignore[reportUnknownMemberType]
        dev_server_existing_path=_temporal_cli(),
        dev_server_extra_args=['--dynamic-config-value', 'frontend.enableServerVersionCheck=false'],
        dev_server_log_level='error',
    )
    async with await environment as env:
        config = env.client.config()
        config['plugins'] = [PydanticAIPlugin()]
        client = Client(**config)
        yield TemporalScale(client, env.client.service_client.config.target_host, env.client.namespace)


class DBOSScale(ScaleTarget):
    """One PostgreSQL server; each measurement a fresh database whose queue the workers share; a `DBOSClient`
    enqueues."""

    engine = 'dbos'

    def __init__(self, server_url: str, directory: str) -> None:
        self._server_url = server_url
        # The embedded server daemonizes (as root, under its own user): found again by its data directory.
        self.server_marker = directory
        self._url = ''
        self._client: Any = None

    def worker_argvs(self, processes: int, runs: int) -> list[list[str]]:
        from durable_dbos.testing import postgres_url

        # A fresh database per measurement: no queue rows or registrations carry over from the previous one.
        self._url = postgres_url(self._server_url, f'bench_scale_{processes}_{uuid.uuid4().hex[:6]}')
        # Each process takes at most its share of the runs, so all of them are in flight at once, spread evenly.
        share = math.ceil(runs / processes)
        return [
            ['dbos', '--database-url', self._url, '--executor-id', f'scale-{index}', '--worker-concurrency', str(share)]
            for index in range(processes)
        ]

    def _dbos_client(self) -> Any:
        from dbos import DBOSClient

        from ._scale_worker import DBOS_APP

        if self._client is None:
            self._client = DBOSClient(system_database_url=self._url, application_name=DBOS_APP)
        return self._client

    async def run_all(self, prompt: str, count: int, prefix: str, timeout_s: float) -> tuple[list[str], float]:
        from ._scale_worker import AGENT_NAME, DBOS_APP, DBOS_QUEUE

        client = self._dbos_client()
        start_epoch = time.time()
        start = time.perf_counter()
        # The agent's own `{name}.run` workflow, by name: DBOS records it as a function (no class instance to bind).
        options = {
            'queue_name': DBOS_QUEUE,
            'workflow_name': f'{AGENT_NAME}.run',
            'app_version': DBOS_APP,
        }
        await asyncio.gather(
            *(client.enqueue_async({**options, 'workflow_id': f'{prefix}{index}'}, prompt) for index in range(count))
        )
        # One listing per poll instead of 200 handles polling the database each.
        while True:
            statuses = await client.list_workflows_async(workflow_id_prefix=prefix, load_input=False, load_output=False)
            finished = [status for status in statuses if status.status in ('SUCCESS', 'ERROR', 'CANCELLED')]
            if len(finished) == count:
                break
            if time.perf_counter() - start > timeout_s:
                raise RuntimeError(f'{count - len(finished)} of {count} DBOS runs not done after {timeout_s:.0f} s')
            await asyncio.sleep(0.05)
        # The last run's completion time as DBOS recorded it (the poll above only bounds it).
        last_ms = max(status.updated_at or 0 for status in finished)
        elapsed = last_ms / 1000 - start_epoch if last_ms else time.perf_counter() - start
        statuses = await client.list_workflows_async(workflow_id_prefix=prefix, load_input=False, load_output=True)
        return [getattr(status.output, 'output', repr(status.error)) for status in statuses], elapsed

    async def runs_per_worker(self, prefix: str, count: int, pids: list[int]) -> list[int]:
        statuses = await self._dbos_client().list_workflows_async(
            workflow_id_prefix=prefix, load_input=False, load_output=False
        )
        return [sum(status.executor_id == f'scale-{index}' for status in statuses) for index in range(len(pids))]

    async def close_measurement(self) -> None:
        if self._client is not None:
            self._client.destroy()
            self._client = None


@asynccontextmanager
async def dbos_scale() -> AsyncGenerator[ScaleTarget]:
    """Start an embedded PostgreSQL server (stopped on exit) and yield the DBOS scale target."""
    from durable_dbos.testing import postgres_server

    with tempfile.TemporaryDirectory(prefix='bench-scale-pg-') as directory, postgres_server(directory) as url:
        yield DBOSScale(url, directory)


class PrefectScale(ScaleTarget):
    """One Prefect server; N processes serve one deployment (each flow run in a subprocess); the client triggers
    runs with `run_deployment`."""

    engine = 'prefect'

    def __init__(self, env: dict[str, str]) -> None:
        self._env = env

    def worker_env(self) -> dict[str, str] | None:
        return self._env

    def worker_argvs(self, processes: int, runs: int) -> list[list[str]]:
        # Each runner takes at most its share of the runs, so all of them are in flight at once, spread evenly.
        share = str(math.ceil(runs / processes))
        tag = uuid.uuid4().hex[:6]
        return [['prefect', '--runner-name', f'scale-{tag}-{index}', '--limit', share] for index in range(processes)]

    async def run_all(self, prompt: str, count: int, prefix: str, timeout_s: float) -> tuple[list[str], float]:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
        from prefect.deployments import run_deployment

        from ._scale_prefect import DEPLOYMENT

        start_epoch = time.time()
        start = time.perf_counter()
        # Awaitable from async code on every Prefect 3 (`sync_compatible` before 3.5, `async_dispatch` after).
        trigger: Any = run_deployment
        # One after the other: creating them all in one burst gets `503 Service Unavailable` from the local server on
        # a busy machine. Each takes milliseconds, against seconds for a flow run: the runs are still all in flight.
        flow_runs: list[Any] = []
        for index in range(count):
            flow_runs.append(
                await trigger(
                    f'bench_scale_served/{DEPLOYMENT}',
                    parameters={'prompt': prompt},
                    flow_run_name=f'{prefix}{index}',
                    timeout=0,
                    as_subflow=False,
                )
            )
        ids = [flow_run.id for flow_run in flow_runs]
        async with get_client() as client:
            while True:
                runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
                finished = [run for run in runs if run.state is not None and run.state.is_final()]
                if len(finished) == count:
                    break
                if time.perf_counter() - start > timeout_s:
                    raise RuntimeError(f'{count - len(finished)} of {count} Prefect runs not done after {timeout_s} s')
                await asyncio.sleep(0.2)
        ends = [run.end_time.timestamp() for run in finished if run.end_time is not None]
        elapsed = max(ends) - start_epoch if len(ends) == count else time.perf_counter() - start
        outputs: list[str] = []
        for run in finished:
            assert run.state is not None
            outputs.append(await run.state.result() if run.state.is_completed() else repr(run.state))
        return outputs, elapsed


@asynccontextmanager
async def prefect_scale() -> AsyncGenerator[ScaleTarget]:
    """Start a private Prefect server (stopped on exit) and yield the Prefect scale target."""
    from durable_prefect.testing import prefect_test_server

    with prefect_test_server() as home:
        from prefect.settings import PREFECT_API_URL

        # The serving processes (and their flow-run subprocesses) reach the server, and store results, as this one.
        env = {
            **os.environ,
            'PREFECT_API_URL': str(PREFECT_API_URL.value()),
            'PREFECT_HOME': str(home),
            'PREFECT_LOCAL_STORAGE_PATH': str(home / 'storage'),
            'PREFECT_LOGGING_LEVEL': 'WARNING',
        }
        yield PrefectScale(env)


_TARGETS = {'temporal': temporal_scale, 'dbos': dbos_scale, 'prefect': prefect_scale}


# --- the measurement ----------------------------------------------------------------------------------------------


async def measure_engine(engine: str, options: ScaleOptions, log: Callable[[str], None] = print) -> list[ScaleResult]:
    """Start `engine`'s server, measure each process count of `options` on fresh workers, stop everything."""
    log(f'--- {engine}: {", ".join(map(str, options.processes))} worker processes, {options.runs} runs at once')
    expected = f'done after {options.workload.turns} turns'
    prompt = options.workload.prompt()
    results: list[ScaleResult] = []
    async with AsyncExitStack() as stack:
        target = await stack.enter_async_context(_TARGETS[engine]())
        for processes in options.processes:
            result = ScaleResult(engine, processes, options.runs)
            results.append(result)
            workers = WorkerProcesses()
            try:
                await workers.start(target.worker_argvs(processes, options.runs), target.worker_env())
                result.worker_pids = workers.pids
                if options.warmup:
                    outputs, _ = await target.run_all(prompt, options.warmup, _prefix('warm'), options.timeout_s)
                    if any(output != expected for output in outputs):
                        result.errors.append(f'warm-up output {outputs[0]!r}, expected {expected!r}')
                await asyncio.sleep(1.0)  # let the warm-up's last completions settle before the idle reading
                result.rss_idle_mb = workers.rss_kb() / 1024
                result.load_before = _load()
                cpu_before = workers.cpu_s()
                # The servers: whatever this process started besides the workers (dev server, PostgreSQL and the
                # backends of the connections opened so far; the warm-up opened the pools' connections).
                servers = server_pids(target.server_marker, set(workers.all_pids()))
                server_cpu_before = {pid: _cpu_s(pid) for pid in servers}
                prefix = _prefix('run')
                with _Sampler(workers, servers) as sampler:
                    outputs, result.elapsed_s = await target.run_all(prompt, options.runs, prefix, options.timeout_s)
                result.worker_cpu_s = workers.cpu_s() - cpu_before
                # Server processes that appeared during the timed runs (new connections) count from zero.
                servers_after = server_pids(target.server_marker, set(workers.all_pids()))
                result.server_cpu_s = sum(_cpu_s(pid) - server_cpu_before.get(pid, 0.0) for pid in servers_after)
                result.load_after = _load()
                result.rss_peak_mb = sampler.peak_kb / 1024
                result.server_rss_mb = sampler.server_peak_kb / 1024
                result.completed = sum(output == expected for output in outputs)
                result.wrong_outputs = len(outputs) - result.completed
                if result.wrong_outputs:
                    wrong = next(output for output in outputs if output != expected)
                    result.errors.append(f'{result.wrong_outputs} wrong outputs, e.g. {wrong!r}')
                result.runs_per_s = result.completed / result.elapsed_s if result.elapsed_s else 0.0
                result.runs_per_worker = await target.runs_per_worker(prefix, options.runs, workers.pids)
            except Exception as error:  # one failed measurement is reported; the next process count still runs
                result.errors.append(f'{type(error).__name__}: {error}'[:500])
            finally:
                await target.close_measurement()
                await workers.stop()
            log(_row_text(result, results[0]))
    return results


def _log(line: str) -> None:
    print(line, flush=True)


def _prefix(kind: str) -> str:
    return f'scale-{kind}-{uuid.uuid4().hex[:8]}-'


def efficiency(result: ScaleResult, single: ScaleResult) -> float | None:
    """Runs/s at N / (N x runs/s at 1)."""
    if not single.runs_per_s or single.processes != 1:
        return None
    return result.runs_per_s / (result.processes * single.runs_per_s)


def _row_text(result: ScaleResult, single: ScaleResult) -> str:
    eff = efficiency(result, single)
    text = (
        f'{result.engine} x{result.processes}: {result.completed}/{result.runs} runs in {result.elapsed_s:.1f} s = '
        f'{result.runs_per_s:.1f} runs/s, efficiency {"n/a" if eff is None else f"{eff:.2f}"}, '
        f'RSS {result.rss_idle_mb:.0f} -> {result.rss_peak_mb:.0f} MB ({result.rss_per_run_kb:.0f} KB per run in '
        f'flight), load {result.load_before} -> {result.load_after}'
    )
    return text + (f' ERRORS {result.errors}' if result.errors else '')


# --- report -------------------------------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    """The results as markdown: how they were measured, then one table row per engine and process count."""
    machine = report['machine']
    options = report['options']
    cores = machine['cores']
    lines = [
        f'Measured {report["started"]} with `{report["command"]}` ({report["elapsed_s"]:.0f} s in all).',
        '',
        f'- Machine: {machine["cpu"]}, {cores} cores, {machine["memory_gb"]:.1f} GB RAM; Python {machine["python"]}.',
        '- Versions: ' + ', '.join(f'{name} {version}' for name, version in machine['versions'].items()) + '.',
        f"- Load average (1/5/15 min) before: {report['load_before']}; after: {report['load_after']}; each row's "
        '1-minute load before and after its timed runs is in the last column.',
        f'- Workload: T={options["turns"]} K={options["tools"]} ({options["units"]} durable units per run); all the '
        f'runs of a row started at once by one client after {options["warmup"]} warm-up runs (fewer on Prefect), '
        'every output checked. Each row is a fresh set of worker processes on the same server.',
        f'- On {cores} cores, more worker processes than cores cannot scale linearly: the workers, the engine '
        'server and the client share the same cores. Efficiency is runs/s at N / (N x runs/s at 1).',
        '- Memory: worker RSS is summed over the worker processes (and, on Prefect, the flow-run subprocesses they '
        'start), sampled every 0.25 s; per run in flight = peak / runs; added per run = (peak - idle) / runs. '
        'Server RSS sums the server processes (PostgreSQL: each backend counts the shared buffers it touched).',
        '',
        '| engine | worker processes | runs at once | runs/s | scaling efficiency | worker RSS per run in flight | '
        'worker RSS idle -> peak | RSS added per run | CPU per run: workers / server | server RSS | runs per worker | '
        'load 1 min before -> after |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|',
    ]
    blank = ' |' * 9
    for engine, rows in report['engines'].items():
        single = next((row for row in rows if row['processes'] == 1), None)
        for row in rows:
            head = f'| {engine} | {row["processes"]} | {row["runs"]} |'
            if row['errors'] and not row['completed']:
                lines.append(f'{head} failed: {row["errors"][0][:120]}' + blank)
                continue
            eff = (
                row['runs_per_s'] / (row['processes'] * single['runs_per_s'])
                if single and single['runs_per_s']
                else None
            )
            cpu = row['cpu_ms_per_run']
            server_cpu = row.get('server_cpu_ms_per_run')
            spread = ' / '.join(str(count) for count in row['runs_per_worker']) or 'n/a'
            lines.append(
                f'{head} {row["runs_per_s"]:.{1 if row["runs_per_s"] >= 1 else 2}f} | '
                f'{"n/a" if eff is None else f"{eff:.2f}"} | '
                f'{row["rss_per_run_kb"]:.0f} KB | {row["rss_idle_mb"]:.0f} -> {row["rss_peak_mb"]:.0f} MB | '
                f'{row["rss_growth_per_run_kb"]:.0f} KB | {"n/a" if cpu is None else f"{cpu:.0f}"} / {"n/a" if server_cpu is None else f"{server_cpu:.0f}"} ms | '
                f'{row["server_rss_mb"]:.0f} MB | {spread} | '
                f'{row["load_before"].split(" / ")[0]} -> {row["load_after"].split(" / ")[0]} |'
            )
            if row['errors']:
                lines.append(f'{head} errors: {row["errors"][0][:160]}' + blank)
    return '\n'.join(lines)


def write_docs(report: dict[str, Any], path: Path) -> None:
    """Replace the text between the scale-out markers of `path` with the report's tables."""
    text = path.read_text()
    pattern = re.compile(re.escape(BEGIN) + '.*?' + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f'{path}: no {BEGIN} ... {END} markers')
    path.write_text(pattern.sub(lambda _: f'{BEGIN}\n{markdown(report)}\n{END}', text))


# --- command line -------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='just bench-scale',
        description='Runs/s with 1, 2 and 4 worker processes against one engine server (Temporal; DBOS on PostgreSQL).',
    )
    parser.add_argument('--engine', action='append', choices=ENGINES, help='engine to measure (default: all)')
    parser.add_argument('--processes', default='1,2,4', help='comma-separated worker-process counts (default 1,2,4)')
    parser.add_argument('--runs', type=int, default=200, help='runs started at once per measurement (default 200)')
    parser.add_argument('--warmup', type=int, default=20, help='warm-up runs before each measurement (default 20)')
    parser.add_argument(
        '--prefect-processes',
        default='1,2',
        help='serving-process counts on Prefect (default 1,2: each flow run is a subprocess of its own there)',
    )
    parser.add_argument('--prefect-runs', type=int, default=10, help='runs started at once on Prefect (default 10)')
    parser.add_argument('--turns', type=int, default=5, help='model turns per run, T (default 5)')
    parser.add_argument('--tools', type=int, default=2, help='parallel tool calls per turn, K (default 2)')
    parser.add_argument('--timeout', type=float, default=600.0, help='seconds a measurement may take (default 600)')
    parser.add_argument('--json', type=Path, metavar='PATH', help='write the results as JSON')
    parser.add_argument(
        '--write-docs',
        nargs='?',
        const=DOCS_PATH,
        type=Path,
        metavar='PATH',
        help=f'write the table between the scale-out markers of a markdown file (default {DOCS_PATH.name})',
    )
    parser.add_argument(
        '--from-json',
        type=Path,
        action='append',
        metavar='PATH',
        help='measure nothing: report an earlier --json (repeat to join runs of different engines)',
    )
    return parser


def _strip_outputs(argv: list[str]) -> list[str]:
    """The arguments that say what is measured: the report outputs (and their values) left out."""
    stripped: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ('--json', '--write-docs', '--from-json'):
            skip = arg != '--write-docs'  # its path is optional; a following flag is not one
        elif not arg.startswith(('--json=', '--write-docs=', '--from-json=')):
            if arg.endswith('.md') and stripped and stripped[-1] == '--write-docs':
                continue
            stripped.append(arg)
    return stripped


async def run(argv: list[str]) -> dict[str, Any]:
    """Measure what the command line `argv` asks for; return the JSON-ready report."""
    from ._cli import machine

    args = _parser().parse_args(argv)
    # SIGTERM (a test's timeout, Ctrl-C in a CI runner) cancels the measurement: the workers and the servers are
    # stopped on the way out instead of being left behind.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    workload = Workload(turns=args.turns, tools=args.tools)
    options = ScaleOptions(
        processes=tuple(int(count) for count in args.processes.split(',')),
        runs=args.runs,
        warmup=args.warmup,
        workload=workload,
        timeout_s=args.timeout,
    )
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = _load()
    start = time.perf_counter()
    engines: dict[str, Any] = {}
    for engine in args.engine or list(ENGINES):
        if engine == 'prefect':
            # A flow run of a served deployment is a new Python process importing Prefect and pydantic-ai: 200 of
            # them at once would measure process start-up on 2 cores, not the engine.
            engine_options = dataclasses.replace(
                options,
                processes=tuple(int(count) for count in args.prefect_processes.split(',')),
                runs=args.prefect_runs,
                warmup=min(options.warmup, args.prefect_runs // 4),
            )
        else:
            engine_options = options
        results = await measure_engine(engine, engine_options, log=_log)
        engines[engine] = [result.to_json() for result in results]
    return {
        'command': ' '.join(['uv run just bench-scale', *_strip_outputs(argv)]),
        'started': started.strftime('%Y-%m-%d %H:%M UTC'),
        'elapsed_s': time.perf_counter() - start,
        'machine': machine(),
        'load_before': load_before,
        'load_after': _load(),
        'options': {
            'processes': list(options.processes),
            'runs': options.runs,
            'warmup': options.warmup,
            'prefect_processes': args.prefect_processes,
            'prefect_runs': args.prefect_runs,
            'turns': workload.turns,
            'tools': workload.tools,
            'units': workload.units,
        },
        'engines': engines,
    }


def _joined(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One report of several (each engine from the last report that measured it; commands and loads listed)."""
    if len(reports) == 1:
        return reports[0]
    joined = dict(reports[0])
    engines: dict[str, Any] = {}
    for report in reports:
        engines.update(report['engines'])
    joined['engines'] = engines
    joined['command'] = '` then `'.join(report['command'] for report in reports)
    joined['started'] = ' and '.join(report['started'] for report in reports)
    joined['elapsed_s'] = sum(report['elapsed_s'] for report in reports)
    joined['load_before'] = ' and '.join(report['load_before'] for report in reports)
    joined['load_after'] = ' and '.join(report['load_after'] for report in reports)
    return joined


def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m benchmarks._scale`."""
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    if args.from_json:
        report = _joined([json.loads(path.read_text()) for path in args.from_json])
    else:
        os.environ.setdefault('PREFECT_LOGGING_LEVEL', 'WARNING')
        report = asyncio.run(run(argv))
    print(markdown(report), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
        print(f'JSON written to {args.json}')
    if args.write_docs:
        write_docs(report, args.write_docs)
        print(f'Table written to {args.write_docs}')
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal SDK can abort at interpreter exit after a client ran: everything is shut down, so leave now.
    os._exit(0)


if __name__ == '__main__':
    main()
