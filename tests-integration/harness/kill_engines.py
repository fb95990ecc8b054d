"""The engines' side of a kill round (`harness/kill_run.py`): create the runs, spawn workers, read the outputs and
the engine's records.

- DBOS: a worker process launches DBOS on the round's database (SQLite in its directory, or a fresh PostgreSQL
  database) and starts the round's workflows; a recovering one's `DBOS.launch()` resumes them.
- Temporal: the round's workflows are started on a server that outlives the workers (pollers, stopped by PID).
- Prefect: the round's flow runs are created on a server that outlives the workers; a recovering worker reschedules
  each crashed flow run and runs it again (completed tasks are cache hits).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncGenerator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio

from .crash_agent import PHASES, CrashDeps, crash_prompt
from .crash_run import WorkerProcess, Zygote, prefect_worker_env
from .engine_records import UnitRecord, dbos_records, prefect_records, temporal_records
from .kill_run import KillEngine

__all__ = ('DBOSKills', 'PrefectKills', 'TemporalKills', 'kill_engine')

RECORDS_SETTLE_SECONDS = 60.0
"""How long the Prefect records of a round may take to name every unit after the last worker exited."""


def _read_results(workdir: Path, runs: list[str]) -> dict[str, str | None]:
    outputs: dict[str, str | None] = {}
    for run in runs:
        path = workdir / f'{run}.json'
        outputs[run] = str(json.loads(path.read_text(encoding='utf-8'))['output']) if path.exists() else None
    return outputs


class DBOSKills:
    """DBOS: a worker process launches DBOS and starts (or recovers) the round's workflows on one database."""

    engine = 'dbos'

    def __init__(self, zygote: Zygote, database_url: Callable[[Path], str]) -> None:
        self._zygote = zygote
        self._database_url = database_url

    async def start(self, runs: list[str], workdir: Path) -> Any:
        """See [`KillEngine.start`][harness.kill_run.KillEngine.start]."""
        return {'db': self._database_url(workdir), 'workflows': {run: f'kill-{uuid.uuid4().hex}' for run in runs}}

    def spawn(self, state: Any, workdir: Path, *, recover: bool) -> WorkerProcess:
        """See [`KillEngine.spawn`][harness.kill_run.KillEngine.spawn]."""
        args = ['dbos-many', '--db', state['db'], '--results', str(workdir)]
        for run, workflow_id in state['workflows'].items():
            args += ['--run', f'{run}={workflow_id}']
        return self._zygote.spawn([*args, *(['--recover'] if recover else [])], workdir, workdir / 'calls.jsonl', None)

    def worker_exits(self) -> bool:
        """See [`KillEngine.worker_exits`][harness.kill_run.KillEngine.worker_exits]."""
        return True

    async def outputs(self, state: Any, workdir: Path, timeout: float) -> dict[str, str | None]:
        """See [`KillEngine.outputs`][harness.kill_run.KillEngine.outputs]."""
        return _read_results(workdir, list(state['workflows']))

    async def records(self, state: Any) -> list[UnitRecord]:
        """See [`KillEngine.records`][harness.kill_run.KillEngine.records]."""
        return await anyio.to_thread.run_sync(dbos_records, state['db'], state['workflows'])


class TemporalKills:
    """Temporal: the round's workflows are started on a server that outlives the workers (pollers, stopped here)."""

    engine = 'temporal'

    def __init__(self, zygote: Zygote, client: Any) -> None:
        self._zygote = zygote
        self._client = client

    async def start(self, runs: list[str], workdir: Path) -> Any:
        """See [`KillEngine.start`][harness.kill_run.KillEngine.start]."""
        from .temporal_crash import CRASH_WORKFLOW_NAME

        task_queue = f'kill-{uuid.uuid4().hex}'
        handles: dict[str, Any] = {}
        for run in runs:
            handles[run] = await self._client.start_workflow(
                CRASH_WORKFLOW_NAME,
                args=[crash_prompt(run), CrashDeps()],
                id=f'kill-{uuid.uuid4().hex}',
                task_queue=task_queue,
                result_type=str,
                # A workflow task lost with a killed worker is retried after this timeout. Not shorter: on a loaded
                # machine a replay from the start (no workflow cache) can outlast 2 s, and a task that always times
                # out before it completes leaves the run stuck until the load drops.
                task_timeout=timedelta(seconds=10),
            )
        return {'task_queue': task_queue, 'handles': handles, 'workers': 0}

    def spawn(self, state: Any, workdir: Path, *, recover: bool) -> WorkerProcess:
        """See [`KillEngine.spawn`][harness.kill_run.KillEngine.spawn]."""
        state['workers'] += 1
        config = self._client.service_client.config
        args = ['temporal', '--address', config.target_host, '--namespace', self._client.namespace]
        args += ['--task-queue', state['task_queue'], '--ready', str(workdir / f'ready-{state["workers"]}')]
        return self._zygote.spawn(args, workdir, workdir / 'calls.jsonl', None)

    def worker_exits(self) -> bool:
        """See [`KillEngine.worker_exits`][harness.kill_run.KillEngine.worker_exits]."""
        return False

    async def outputs(self, state: Any, workdir: Path, timeout: float) -> dict[str, str | None]:
        """See [`KillEngine.outputs`][harness.kill_run.KillEngine.outputs]."""
        outputs: dict[str, str | None] = {}
        deadline = time.monotonic() + timeout
        for run, handle in state['handles'].items():
            try:
                with anyio.fail_after(max(deadline - time.monotonic(), 1.0)):
                    outputs[run] = await handle.result()
            except TimeoutError:
                outputs[run] = None
        return outputs

    async def records(self, state: Any) -> list[UnitRecord]:
        """See [`KillEngine.records`][harness.kill_run.KillEngine.records]."""
        return await temporal_records(state['handles'])


class PrefectKills:
    """Prefect: the round's flow runs are created on a server that outlives the workers; a recovering worker
    reschedules each crashed flow run and runs it again."""

    engine = 'prefect'

    def __init__(self, zygote: Zygote) -> None:
        self._zygote = zygote

    async def start(self, runs: list[str], workdir: Path) -> Any:
        """See [`KillEngine.start`][harness.kill_run.KillEngine.start]."""
        from prefect.client.orchestration import get_client

        from .prefect_crash import crash_flow

        flow_runs: dict[str, Any] = {}
        async with get_client() as client:
            for run in runs:
                parameters = {'prompt': crash_prompt(run), 'factor': 7}
                flow_runs[run] = (await client.create_flow_run(crash_flow, parameters=parameters)).id
        return {'flow_runs': flow_runs}

    def spawn(self, state: Any, workdir: Path, *, recover: bool) -> WorkerProcess:
        """See [`KillEngine.spawn`][harness.kill_run.KillEngine.spawn]."""
        args = ['prefect-many', '--results', str(workdir)]
        for run, flow_run_id in state['flow_runs'].items():
            args += ['--run', f'{run}={flow_run_id}']
        return self._zygote.spawn([*args, *(['--recover'] if recover else [])], workdir, workdir / 'calls.jsonl', None)

    def worker_exits(self) -> bool:
        """See [`KillEngine.worker_exits`][harness.kill_run.KillEngine.worker_exits]."""
        return True

    async def outputs(self, state: Any, workdir: Path, timeout: float) -> dict[str, str | None]:
        """See [`KillEngine.outputs`][harness.kill_run.KillEngine.outputs]."""
        return _read_results(workdir, list(state['flow_runs']))

    async def records(self, state: Any) -> list[UnitRecord]:
        """See [`KillEngine.records`][harness.kill_run.KillEngine.records].

        The server records task run states from events, asynchronously: when the last worker exits, the states of
        its last tasks may not be recorded yet (the suite read finished runs without their last units). So the
        records are read again until every run's records name its six calls, for up to `RECORDS_SETTLE_SECONDS`
        (a record lost with a killed worker never comes: `kill_run.analyse` judges what is still missing then).
        """
        deadline = time.monotonic() + RECORDS_SETTLE_SECONDS
        while True:
            records = await prefect_records(state['flow_runs'])
            named = [{record.label for record in records if record.run == run} for run in state['flow_runs']]
            if all(labels >= set(PHASES) for labels in named) or time.monotonic() > deadline:
                return records
            await anyio.sleep(1.0)


@asynccontextmanager
async def kill_engine(
    engine: str,
    *,
    temporal_client: Any = None,
    prefect_home: Path | None = None,
    dbos_database_url: Callable[[Path], str] | None = None,
) -> AsyncGenerator[KillEngine]:
    """The round runner of `engine` with its zygote and, unless given, its server (started here, stopped on exit).

    Arguments as for [`crash_engine`][harness.crash_run.crash_engine].
    """
    async with AsyncExitStack() as stack:
        if engine == 'dbos':
            zygote = Zygote('dbos')
            stack.callback(zygote.close)
            yield DBOSKills(zygote, dbos_database_url or (lambda workdir: f'sqlite:///{workdir / "dbos.sqlite"}'))
        elif engine == 'temporal':
            if temporal_client is None:
                from durable_temporal.testing import dev_server

                temporal_client = (await stack.enter_async_context(dev_server())).client
            zygote = Zygote('temporal')
            stack.callback(zygote.close)
            yield TemporalKills(zygote, temporal_client)
        elif engine == 'prefect':
            if prefect_home is None:
                from durable_prefect.testing import prefect_test_server

                # Generous: under heavy load the server took over 120 s (the default) to come up.
                prefect_home = stack.enter_context(prefect_test_server(server_startup_timeout=600))
            zygote = Zygote('prefect', prefect_worker_env(prefect_home))
            stack.callback(zygote.close)
            yield PrefectKills(zygote)
        else:
            raise ValueError(f'unknown engine {engine!r}')
