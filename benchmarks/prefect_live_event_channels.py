"""Measure the Prefect channels considered for live events: artifacts vs events (websocket and `/events/filter`).

`uv run python -m benchmarks.prefect_live_event_channels`: starts the test server (`durable_prefect.testing`), runs a
flow whose task publishes 40 numbered items 0.1 s apart on each channel, and prints the latency from publication to
a consumer polling (or subscribed) in the same process. The figures are in "Live events" of `docs/prefect.md`.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import datetime, timedelta, timezone
from typing import Any, cast
from uuid import UUID

from durable_prefect.testing import prefect_test_server

ITEMS = 40
ARTIFACT_TYPE = 'durable-agent-events:measure'


async def _measure() -> None:
    from prefect import flow, task
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterType
    from prefect.client.schemas.sorting import ArtifactSort
    from prefect.context import FlowRunContext
    from prefect.events import emit_event
    from prefect.events.clients import get_events_subscriber
    from prefect.events.filters import (
        EventFilter,
        EventNameFilter,
        EventOccurredFilter,
        EventOrder,
        EventResourceFilter,
    )

    sent_event: dict[int, float] = {}
    sent_artifact: dict[int, float] = {}
    got: dict[str, dict[int, float]] = {'websocket': {}, 'filter': {}, 'artifacts': {}}
    writes: list[float] = []
    flow_run_ids: asyncio.Queue[UUID] = asyncio.Queue()

    @task
    async def produce(flow_run_id: UUID) -> None:
        async with get_client() as client:
            for seq in range(ITEMS):
                sent_event[seq] = time.monotonic()
                emit_event(
                    event='durable.agent.events',
                    resource={'prefect.resource.id': f'prefect.flow-run.{flow_run_id}'},
                    payload={'seq': seq},
                )
                sent_artifact[seq] = start = time.monotonic()
                await client.create_artifact(
                    ArtifactCreate(type=ARTIFACT_TYPE, data={'seq': seq}, flow_run_id=flow_run_id)
                )
                writes.append(time.monotonic() - start)
                await asyncio.sleep(0.1)

    @flow
    async def producer() -> None:
        context = FlowRunContext.get()
        assert context is not None
        assert context.flow_run is not None
        for _ in range(3):  # one id per consumer
            flow_run_ids.put_nowait(context.flow_run.id)
        await asyncio.sleep(1.0)  # the consumers are ready
        await produce(context.flow_run.id)

    def event_filter(flow_run_id: UUID) -> EventFilter:
        now = datetime.now(timezone.utc)
        return EventFilter(
            resource=EventResourceFilter(id=[f'prefect.flow-run.{flow_run_id}']),
            event=EventNameFilter(name=['durable.agent.events']),
            # Aware datetimes; the field's type is pendulum's `DateTime` before Prefect 3.5.
            occurred=EventOccurredFilter(
                since=cast(Any, now - timedelta(hours=1)), until=cast(Any, now + timedelta(hours=1))
            ),
            order=EventOrder.ASC,
        )

    async def websocket() -> None:
        flow_run_id = await flow_run_ids.get()
        async with get_events_subscriber(filter=event_filter(flow_run_id)) as subscriber:
            async for event in subscriber:
                got['websocket'].setdefault(int(event.payload['seq']), time.monotonic())
                if len(got['websocket']) == ITEMS:
                    return

    async def poll_events() -> None:
        flow_run_id = await flow_run_ids.get()
        async with get_client() as client:
            deadline = time.monotonic() + 60
            while len(got['filter']) < ITEMS and time.monotonic() < deadline:
                body = {'filter': event_filter(flow_run_id).model_dump(mode='json'), 'limit': 50}
                response = await client.request('POST', '/events/filter', json=body)
                found: list[dict[str, Any]] = response.json()['events']
                for event in found:
                    got['filter'].setdefault(int(event['payload']['seq']), time.monotonic())
                await asyncio.sleep(0.1)

    async def poll_artifacts() -> None:
        flow_run_id = await flow_run_ids.get()
        artifact_filter = ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]), type=ArtifactFilterType(any_=[ARTIFACT_TYPE])
        )
        async with get_client() as client:
            deadline = time.monotonic() + 60
            while len(got['artifacts']) < ITEMS and time.monotonic() < deadline:
                found = await client.read_artifacts(
                    artifact_filter=artifact_filter, sort=ArtifactSort.CREATED_DESC, limit=50
                )
                for artifact in found:
                    data: Any = artifact.data
                    got['artifacts'].setdefault(int(data['seq']), time.monotonic())
                await asyncio.sleep(0.1)

    await asyncio.gather(producer(), asyncio.wait_for(websocket(), 60), poll_events(), poll_artifacts())
    for name, sent in (('websocket', sent_event), ('filter', sent_event), ('artifacts', sent_artifact)):
        latencies = [got[name][seq] - sent[seq] for seq in got[name]]
        print(
            f'{name}: {len(latencies)}/{ITEMS} items, median {statistics.median(latencies) * 1000:.0f} ms, '
            f'max {max(latencies) * 1000:.0f} ms'
        )
    print(f'artifact write: median {statistics.median(writes) * 1000:.0f} ms, max {max(writes) * 1000:.0f} ms')


def main() -> None:
    """Run the measurement on a private test server."""
    with prefect_test_server():
        import prefect

        print('prefect', prefect.__version__)
        asyncio.run(_measure())


if __name__ == '__main__':
    main()
