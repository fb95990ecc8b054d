"""Kill a worker process at a chosen side-channel event, start another, and check what the engine recovered.

Used by `test_crash.py` (≥10 seeded kill points per engine) and by `crash.py` (the table for `just crash`).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import anyio

from .crash_agent import (
    CRASH_PROMPT,
    EXPECTED_OUTPUT,
    KILL_AT_ENV,
    LOG_ENV,
    PHASES,
    Call,
    CrashDeps,
    committed_calls,
    read_calls,
)

__all__ = (
    'TOTAL_EVENTS',
    'crash_many',
    'CrashEngine',
    'CrashResult',
    'DBOSCrash',
    'PrefectCrash',
    'TemporalCrash',
    'crash_engine',
    'kill_points',
)

TOTAL_EVENTS = 12
"""Side-channel lines of an uninterrupted crash run (3 model requests and 3 tool calls, start and done each)."""

HERE = Path(__file__).resolve().parent.parent
WAIT_SECONDS = 90.0


@dataclass
class CrashResult:
    """What happened to one run killed at side-channel line `kill_at`."""

    engine: str
    kill_at: int
    killed: bool = False
    """The first worker died of SIGKILL."""
    output: str | None = None
    committed: list[str] = field(default_factory=list[str])
    """Calls the engine had recorded before the kill (a later phase had started)."""
    repeated: list[str] = field(default_factory=list[str])
    """Committed calls that ran again: a durability failure."""
    rerun: list[str] = field(default_factory=list[str])
    """Uncommitted calls that ran again (allowed: the kill came before the engine recorded them)."""
    error: str | None = None

    @property
    def completed(self) -> bool:
        """The run finished with the output of an uninterrupted run."""
        return self.output == EXPECTED_OUTPUT

    @property
    def ok(self) -> bool:
        """Killed, completed, nothing committed ran twice."""
        return self.killed and self.completed and not self.repeated


def kill_points(seed: int, runs: int) -> list[int]:
    """`runs` kill points in `1..TOTAL_EVENTS` from a seeded generator: every point once before any repeats."""
    rng = random.Random(seed)
    points: list[int] = []
    while len(points) < runs:
        batch = list(range(1, TOTAL_EVENTS + 1))
        rng.shuffle(batch)
        points.extend(batch)
    return points[:runs]


class WorkerProcess:
    """A worker forked by the zygote (not our child: its exit status arrives through a file)."""

    def __init__(self, pid: int, status: Path) -> None:
        self.pid = pid
        self._status = status

    def poll(self) -> int | None:
        """The exit status (`-signal` if killed), or None while it runs."""
        if not self._status.exists():
            return None
        text = self._status.read_text(encoding='utf-8').strip()
        return int(text) if text else None

    def send_signal(self, sig: int) -> None:
        """Signal the worker if it still runs."""
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)


class Zygote:
    """The pre-warmed process that forks the workers of one engine (see `harness/zygote.py`)."""

    def __init__(self, engine: str, env: dict[str, str] | None = None) -> None:
        full_env = {**os.environ, **(env or {})}
        full_env['PYTHONPATH'] = os.pathsep.join([str(HERE), *filter(None, [full_env.get('PYTHONPATH')])])
        self._process = subprocess.Popen(
            [sys.executable, '-m', 'harness.zygote', engine],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=full_env,
            cwd=HERE,
        )
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._stdin, self._stdout = self._process.stdin, self._process.stdout
        ready = self._stdout.readline()
        if not ready:
            self.close()
            raise RuntimeError(f'the {engine} zygote failed to start (exit {self._process.poll()})')
        self._workers = 0

    def spawn(self, args: Sequence[str], workdir: Path, log: Path, kill_at: int | None) -> WorkerProcess:
        """Fork a worker running `harness.crash_worker <args>`; it kills itself at side-channel line `kill_at`."""
        self._workers += 1
        status = workdir / f'worker-{self._workers}.status'
        command = {
            'args': list(args),
            'env': {LOG_ENV: str(log), **({KILL_AT_ENV: str(kill_at)} if kill_at is not None else {})},
            'unset': [] if kill_at is not None else [KILL_AT_ENV],
            'output': str(workdir / 'workers.log'),
            'status': str(status),
        }
        self._stdin.write((json.dumps(command) + '\n').encode())
        self._stdin.flush()
        answer = json.loads(self._stdout.readline())
        return WorkerProcess(int(answer['pid']), status)

    def close(self) -> None:
        """Stop the zygote (its workers have been waited for by then)."""
        if self._process.poll() is None:
            self._stdin.close()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)


async def _wait(process: WorkerProcess, timeout: float = WAIT_SECONDS) -> int:
    deadline = time.monotonic() + timeout
    while (code := process.poll()) is None:
        if time.monotonic() > deadline:
            await _stop(process)
            raise TimeoutError(f'worker {process.pid} did not finish in {timeout} s')
        await anyio.sleep(0.02)
    return code


async def _stop(process: WorkerProcess) -> None:
    """Stop a worker: SIGTERM, then SIGKILL."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        process.send_signal(sig)
        deadline = time.monotonic() + grace
        while process.poll() is None and time.monotonic() < deadline:
            await anyio.sleep(0.02)
        if process.poll() is not None:
            return


async def wait_worker(process: WorkerProcess, timeout: float = WAIT_SECONDS) -> int:
    """Wait for a worker's exit status (`-signal` if killed); stop it and raise `TimeoutError` after `timeout`."""
    return await _wait(process, timeout)


async def stop_worker(process: WorkerProcess) -> None:
    """Stop a worker if it still runs: SIGTERM, then SIGKILL."""
    await _stop(process)


def _analyse(result: CrashResult, log: Path, first_pid: int) -> CrashResult:
    calls = read_calls(log)
    committed = committed_calls([call for call in calls if call.pid == first_pid])
    starts = Counter(call.label for call in calls if call.kind == 'start')
    result.committed = sorted(committed)
    # A recorded call repeats if it starts again once a later phase has started (from then on the engine holds its
    # result). Starts before that are attempts the engine never recorded: on a loaded machine a model request can
    # outlive its 1.5 s start-to-close timeout and be retried before the agent moves on, which is no repetition.
    result.repeated = sorted(label for label in committed if _starts_after_recorded(calls, label) > 0)
    result.rerun = sorted(label for label, count in starts.items() if count > 1 and label not in committed)
    return result


def _starts_after_recorded(calls: Sequence[Call], label: str) -> int:
    """How often `label` started after the first start of a later phase (when its result was recorded)."""
    phase = PHASES[label]
    recorded_at = next(
        (index for index, call in enumerate(calls) if call.kind == 'start' and PHASES[call.label] > phase), len(calls)
    )
    return sum(1 for call in calls[recorded_at:] if call.kind == 'start' and call.label == label)


def _read_output(path: Path) -> str | None:
    if not path.exists():
        return None
    return str(json.loads(path.read_text(encoding='utf-8'))['output'])


class CrashEngine(Protocol):
    """Runs the crash agent on one engine, killing the first worker at `kill_at`."""

    engine: str

    async def crash_once(self, kill_at: int, workdir: Path) -> CrashResult:
        """One killed run, recovered by a second worker."""
        ...


def _sqlite_in(workdir: Path) -> str:
    return f'sqlite:///{workdir / "dbos.sqlite"}'


class DBOSCrash:
    """DBOS: the worker process is the application; a new process's `DBOS.launch()` recovers the workflow."""

    engine = 'dbos'

    def __init__(self, zygote: Zygote, database_url: Callable[[Path], str] | None = None) -> None:
        self._zygote = zygote
        # SQLite in the run's directory unless another URL (a fresh PostgreSQL database) is given per run.
        self._database_url = database_url or _sqlite_in

    async def crash_once(self, kill_at: int, workdir: Path) -> CrashResult:
        """See [`CrashEngine.crash_once`][harness.crash_run.CrashEngine.crash_once]."""
        log, result_file = workdir / 'calls.jsonl', workdir / 'result.json'
        args = ['dbos', '--db', self._database_url(workdir), '--workflow-id', f'crash-{uuid.uuid4().hex}']
        args += ['--result', str(result_file)]
        result = CrashResult('dbos', kill_at)
        first = self._zygote.spawn(args, workdir, log, kill_at)
        code = await _wait(first)
        result.killed = code == -signal.SIGKILL
        if result.killed:
            await _wait(self._zygote.spawn([*args, '--recover'], workdir, log, None))
        result.output = _read_output(result_file)
        return _analyse(result, log, first.pid)


class TemporalCrash:
    """Temporal: the test starts the workflow on a server that outlives the workers; worker 2 finishes it."""

    engine = 'temporal'

    def __init__(self, zygote: Zygote, client: Any) -> None:
        self._zygote = zygote
        self._client = client

    async def crash_once(self, kill_at: int, workdir: Path) -> CrashResult:
        """See [`CrashEngine.crash_once`][harness.crash_run.CrashEngine.crash_once]."""
        from temporalio.client import Client, WorkflowHandle

        from .temporal_crash import CRASH_WORKFLOW_NAME

        client: Client = self._client
        log = workdir / 'calls.jsonl'
        task_queue = f'crash-{uuid.uuid4().hex}'
        address = client.service_client.config.target_host
        result = CrashResult('temporal', kill_at)

        def worker_args(ready: Path) -> list[str]:
            return [
                'temporal',
                '--address',
                address,
                '--namespace',
                client.namespace,
                '--task-queue',
                task_queue,
                '--ready',
                str(ready),
            ]

        handle: WorkflowHandle[Any, str] = await client.start_workflow(
            CRASH_WORKFLOW_NAME,
            args=[CRASH_PROMPT, CrashDeps()],
            id=f'crash-{uuid.uuid4().hex}',
            task_queue=task_queue,
            result_type=str,
            # A workflow task lost with a killed worker is retried after this timeout.
            task_timeout=timedelta(seconds=2),
        )
        first = self._zygote.spawn(worker_args(workdir / 'ready-1'), workdir, log, kill_at)
        second: WorkerProcess | None = None
        try:
            code = await _wait(first)
            result.killed = code == -signal.SIGKILL
            second = self._zygote.spawn(worker_args(workdir / 'ready-2'), workdir, log, None)
            with anyio.fail_after(WAIT_SECONDS):
                result.output = await handle.result()
        finally:
            await _stop(first)
            if second is not None:
                await _stop(second)
        return _analyse(result, log, first.pid)


class PrefectCrash:
    """Prefect: the test creates the flow run on a server that outlives the workers; worker 2 re-runs it."""

    engine = 'prefect'

    def __init__(self, zygote: Zygote) -> None:
        self._zygote = zygote

    async def crash_once(self, kill_at: int, workdir: Path) -> CrashResult:
        """See [`CrashEngine.crash_once`][harness.crash_run.CrashEngine.crash_once]."""
        from prefect.client.orchestration import get_client

        from .prefect_crash import crash_flow

        log, result_file = workdir / 'calls.jsonl', workdir / 'result.json'
        async with get_client() as client:
            flow_run = await client.create_flow_run(crash_flow, parameters={'prompt': CRASH_PROMPT, 'factor': 7})
        args = ['prefect', '--flow-run-id', str(flow_run.id), '--result', str(result_file)]
        result = CrashResult('prefect', kill_at)
        first = self._zygote.spawn(args, workdir, log, kill_at)
        code = await _wait(first)
        result.killed = code == -signal.SIGKILL
        if result.killed:
            await _wait(self._zygote.spawn([*args, '--recover'], workdir, log, None))
        result.output = _read_output(result_file)
        return _analyse(result, log, first.pid)


@asynccontextmanager
async def crash_engine(
    engine: str,
    *,
    temporal_client: Any = None,
    prefect_home: Path | None = None,
    dbos_database_url: Callable[[Path], str] | None = None,
) -> AsyncGenerator[CrashEngine]:
    """The crash runner of `engine` with its zygote and, unless given, its server (started here, stopped on exit).

    Args:
        engine: `temporal`, `dbos` or `prefect`.
        temporal_client: A client (with `PydanticAIPlugin`) of a running Temporal server; else a dev server starts.
        prefect_home: The `PREFECT_HOME` of a running `prefect_test_server`; else one starts (~10 s).
        dbos_database_url: The system database URL for each run's directory; SQLite in it by default.
    """
    async with AsyncExitStack() as stack:
        if engine == 'dbos':
            zygote = Zygote('dbos')
            stack.callback(zygote.close)
            yield DBOSCrash(zygote, dbos_database_url)
        elif engine == 'temporal':
            if temporal_client is None:
                from durable_temporal.testing import dev_server

                temporal_client = (await stack.enter_async_context(dev_server())).client
            zygote = Zygote('temporal')
            stack.callback(zygote.close)
            yield TemporalCrash(zygote, temporal_client)
        elif engine == 'prefect':
            if prefect_home is None:
                from durable_prefect.testing import prefect_test_server

                prefect_home = stack.enter_context(prefect_test_server())
            zygote = Zygote('prefect', prefect_worker_env(prefect_home))
            stack.callback(zygote.close)
            yield PrefectCrash(zygote)
        else:
            raise ValueError(f'unknown engine {engine!r}')


def prefect_worker_env(home: Path) -> dict[str, str]:
    """Environment for Prefect worker processes: the running test server, its home and result storage."""
    from prefect.settings import PREFECT_API_URL

    api_url = PREFECT_API_URL.value()
    if api_url is None:  # would reach the workers as the URL 'None' (`Invalid URI None/events/in`)
        raise RuntimeError('no Prefect API URL in this context: is the test server running, and seen here?')
    return {
        'PREFECT_API_URL': str(api_url),
        'PREFECT_HOME': str(home),
        'PREFECT_LOCAL_STORAGE_PATH': str(home / 'storage'),
        'PREFECT_SERVER_ANALYTICS_ENABLED': 'false',
        'DO_NOT_TRACK': '1',
    }


async def crash_many(
    runner: CrashEngine, kill_at: Sequence[int], workdir: Path, concurrency: int = 3
) -> list[CrashResult]:
    """One killed run per kill point, `concurrency` at a time (each in its own directory, workflow and task queue)."""
    limiter = anyio.CapacityLimiter(concurrency)
    results: list[CrashResult | None] = [None] * len(kill_at)

    async def one(index: int, point: int) -> None:
        async with limiter:
            run_dir = workdir / f'{runner.engine}-{index:03d}-kill-at-{point}'
            run_dir.mkdir(parents=True)
            try:
                results[index] = await runner.crash_once(point, run_dir)
            except Exception as error:  # a lost run is reported in the table, not raised
                results[index] = CrashResult(runner.engine, point, error=repr(error))

    async with anyio.create_task_group() as group:
        for index, point in enumerate(kill_at):
            group.start_soon(one, index, point)
    return [result for result in results if result is not None]
