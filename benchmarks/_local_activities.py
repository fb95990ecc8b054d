"""The local-activities section of `just bench`: the same run on regular and on local activities (Temporal only).

One dev server and one worker; the run of the main section (T model turns, K parallel tool calls per turn: 13 units
by default) runs one at a time with every unit a regular activity and with every unit a local activity
(`TemporalAgent(local_activities=True)`), the two interleaved (alternating which goes first) so that a change of
machine load hits both alike. Per run: the wall time from start to result, and the workflow history's protobuf bytes,
events, scheduled activities and local-activity markers.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from ._stats import load_average, median
from ._workload import Workload

LOCAL_MARKER = 'core_local_activity'
"""The marker name the Temporal SDK core records a local activity's result under."""


@dataclass(frozen=True)
class LocalOptions:
    """What the local-activities section measures.

    Attributes:
        runs: Timed pairs of runs (regular, local) after warm-up.
        warmup: Untimed pairs before them.
    """

    runs: int = 20
    warmup: int = 2

    def total_steps(self) -> int:
        """Progress steps: two runs per pair."""
        return 2 * (self.runs + self.warmup)


@dataclass
class _Samples:
    wall_ms: list[float] = field(default_factory=list[float])
    history_bytes: list[int] = field(default_factory=list[int])
    events: list[int] = field(default_factory=list[int])
    scheduled: list[int] = field(default_factory=list[int])
    markers: list[int] = field(default_factory=list[int])


@asynccontextmanager
async def _worker() -> AsyncGenerator[tuple[Any, str]]:
    """A dev server and one worker polling for both workflows; yields the client and the task queue."""
    from temporalio.worker import Worker

    from ._temporal import dev_server, ours_client
    from ._temporal_local import LocalActivitiesWorkflow, RegularActivitiesWorkflow

    async with AsyncExitStack() as stack:
        # The same client, converter and worker settings as the main section's `ours`.
        client = ours_client(await stack.enter_async_context(dev_server()))
        task_queue = f'bench-local-{uuid.uuid4().hex}'
        await stack.enter_async_context(
            Worker(client, task_queue=task_queue, workflows=[RegularActivitiesWorkflow, LocalActivitiesWorkflow])
        )
        yield client, task_queue


async def _one(client: Any, task_queue: str, workload: Workload, local: bool, samples: _Samples | None) -> None:
    from temporalio.api.enums.v1 import EventType

    from ._temporal_local import LocalActivitiesWorkflow, RegularActivitiesWorkflow

    workflow = LocalActivitiesWorkflow if local else RegularActivitiesWorkflow
    run_id = f'bench-{"local" if local else "regular"}-{uuid.uuid4().hex[:12]}'
    start = time.perf_counter()
    await client.execute_workflow(workflow.run, workload.prompt(), id=run_id, task_queue=task_queue)
    wall_ms = (time.perf_counter() - start) * 1000
    if samples is None:
        return
    history = await client.get_workflow_handle(run_id).fetch_history()
    samples.wall_ms.append(wall_ms)
    samples.history_bytes.append(sum(event.ByteSize() for event in history.events))
    samples.events.append(len(history.events))
    samples.scheduled.append(
        sum(event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED for event in history.events)
    )
    samples.markers.append(
        sum(
            event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
            and event.marker_recorded_event_attributes.marker_name == LOCAL_MARKER
            for event in history.events
        )
    )


def _summary(samples: _Samples) -> dict[str, Any]:
    return {
        'wall_ms': samples.wall_ms,
        'wall_median_ms': median(samples.wall_ms) if samples.wall_ms else None,
        'history_bytes': median(samples.history_bytes) if samples.history_bytes else None,
        'history_events': median(samples.events) if samples.events else None,
        'scheduled_activities': median(samples.scheduled) if samples.scheduled else None,
        'local_markers': median(samples.markers) if samples.markers else None,
    }


async def run_local_activities(
    workload: Workload,
    options: LocalOptions,
    *,
    progress: Callable[[str, int], None] | None = None,
    on_ready: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Start a dev server and a worker, run the interleaved pairs, stop both; return JSON-ready results."""
    start = time.perf_counter()
    regular, local = _Samples(), _Samples()
    errors: list[str] = []
    async with _worker() as (client, task_queue):
        if on_ready is not None:
            on_ready(options.total_steps())
        load_before = load_average()
        done = 0
        for index in range(options.warmup + options.runs):
            timed = index >= options.warmup
            for is_local in (True, False) if index % 2 else (False, True):
                try:
                    await _one(
                        client, task_queue, workload, is_local, (local if is_local else regular) if timed else None
                    )
                except Exception as error:  # reported; the other runs still go on
                    errors.append(f'{"local" if is_local else "regular"}: {type(error).__name__}: {error}'[:500])
                done += 1
                if progress is not None:
                    progress(f'{"local" if is_local else "regular"} activities', done)
        load_after = load_average()
    regular_summary, local_summary = _summary(regular), _summary(local)
    wall_ratio = (
        local_summary['wall_median_ms'] / regular_summary['wall_median_ms']
        if local_summary['wall_median_ms'] and regular_summary['wall_median_ms']
        else None
    )
    return {
        'workload': workload.label(),
        'units': workload.units,
        'runs': options.runs,
        'regular': regular_summary,
        'local': local_summary,
        'wall_ratio': wall_ratio,
        'load_before': load_before,
        'load_after': load_after,
        'errors': errors,
        'elapsed_s': time.perf_counter() - start,
    }
