"""Live events on Prefect: a run publishes its events as flow-run artifacts, any process with API access reads them.

Prefect has no stream primitive. The channel is the flow run's artifacts (one artifact of type
`durable-agent-events:{topic}` per batch, linked to the flow run): an artifact is written with one synchronous API
call (a committed row when the call returns, so a model-request task whose result is stored has its events stored
too), lives with the flow run (no retention window), and is read back through the same API a consumer needs anyway
to start or watch the run. Prefect events were measured too and rejected: see "Live events" in `docs/prefect.md`.

Every published item carries its offset (`seq`): a record holds a batch of consecutive items, `first` is the offset
of its first. Offsets are given out at write time from the channel's end, which an agent run reads from the newest
record when it first publishes; so a flow run re-run after a crash continues the numbering after what the crashed
attempt stored, and nothing is ever numbered twice.

Two writers:

- flow code publishes every event but the model's stream (tool calls, tool results, ...) and the terminal `AgentRunResultEvent`. Each record stores how many flow-side items the flow run has published so
  far (`flow_published`); a re-run flow, which dispatches the same events in the same order (as the event handler
  tasks already require), skips the ones an earlier attempt stored: exactly once.
- the model-request task publishes the model's stream (part events, the final-result marker) as it comes, batched by the kernel's `EventBatcher`
  (one artifact per `batch_interval`), in the kernel's `UnitEvent` envelope (unit = the task's cache key, the same
  on every attempt). A task that runs again (a task retry, a re-run after a crash) publishes from its start again,
  with new offsets, and the consumer announces it with a `UnitRetryEvent`; a cached task publishes nothing again.

Record (the artifact's `data`, JSON): `{'v': 1, 'first': int, 'flow_published': int, 'items': [...]}`, an item being
`{'kind': 'event', 'event': ...}`, `{'kind': 'unit', 'unit': ..., 'label': ..., 'seq': int, 'event': ...}` or
`{'kind': 'result', 'event': ...}`, events and the result dumped and typed again with the kernel's `dump_live_event`,
`dump_live_result` and `LiveEventDecoder`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Generator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast
from uuid import UUID

from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.actions import ArtifactCreate
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterType
from prefect.client.schemas.objects import Artifact
from prefect.client.schemas.sorting import ArtifactSort
from prefect.context import FlowRunContext, TaskRunContext
from prefect.transactions import get_transaction
from pydantic_ai.agent import AgentRunResult, EventStreamHandler
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import AgentStreamEvent
from pydantic_ai.run import AgentRunResultEvent
from pydantic_ai.tools import RunContext

from durable_kernel import (
    DurableAgentRunEvents,
    EventBatcher,
    EventStreamTopic,
    LiveEventDecoder,
    UnitEvent,
    dump_live_event,
    dump_live_result,
    handle_to_the_end,
    is_model_stream_event,
)
from durable_kernel import topic_to_read as kernel_topic_to_read

__all__ = (
    'ARTIFACT_TYPE_PREFIX',
    'DEFAULT_POLLING_INTERVAL',
    'LiveEventsChannel',
    'current_channel',
    'model_stream_publisher',
    'publish_run_result',
    'publishing_handler',
    'publishing_stream',
    'run_channel',
    'stream_agent_events',
    'topic_to_read',
)

ARTIFACT_TYPE_PREFIX = 'durable-agent-events:'
"""The artifact type of a topic's records is this prefix and the topic's name."""

DEFAULT_POLLING_INTERVAL = timedelta(milliseconds=200)
"""How often a consumer asks the API for new records (one request per interval while the run is quiet)."""

_UNIT_LABEL = 'model_request'
_PAGE = 100


def _artifact_type(topic: str) -> str:
    return f'{ARTIFACT_TYPE_PREFIX}{topic}'


# --- producer -------------------------------------------------------------------------------------------------------


@dataclass
class LiveEventsChannel:
    """One agent run's view of a flow run's channel for a topic: where the next item goes, what was published before.

    Built by the agent run in flow code; the model-request task reaches it through a context variable (a task runs in
    a copy of the flow's context), so flow and task number items from one counter. They never write at once: a model
    request task is awaited before the flow goes on.
    """

    topic: EventStreamTopic
    flow_run_id: UUID
    owner: FlowRunContext
    """The flow run attempt whose channel this is; its `task_run_dynamic_keys` count the flow-side items."""

    next_seq: int = -1
    """The offset of the next item; `-1` until read from the newest record."""

    stored_flow_items: int = 0
    """How many flow-side items the flow run had published before this attempt read the channel."""

    @property
    def _counter_key(self) -> str:
        return f'durable_prefect:live_events:{self.topic.name}'

    def _flow_items(self) -> int:
        count = self.owner.task_run_dynamic_keys.get(self._counter_key, 0)
        assert isinstance(count, int)
        return count

    async def _load(self, client: PrefectClient) -> None:
        if self.next_seq >= 0:
            return
        newest = await client.read_artifacts(artifact_filter=self._filter(), sort=ArtifactSort.CREATED_DESC, limit=1)
        if newest:
            record = _record(newest[0])
            self.next_seq = record['first'] + len(record['items'])
            self.stored_flow_items = record['flow_published']
        else:
            self.next_seq = 0

    def _filter(self) -> ArtifactFilter:
        return ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[self.flow_run_id]),
            type=ArtifactFilterType(any_=[_artifact_type(self.topic.name)]),
        )

    async def _write(self, client: PrefectClient, items: list[Any]) -> None:
        if _begins_attempt(items[0]):
            # The offset before an attempt's first event stays empty: the kernel's retry marker takes it, so a
            # consumer resuming right after the marker is told apart from one resuming right after the event before.
            self.next_seq += 1
        record = {'v': 1, 'first': self.next_seq, 'flow_published': self._flow_items(), 'items': items}
        task_ctx = TaskRunContext.get()
        await client.create_artifact(
            ArtifactCreate(
                type=_artifact_type(self.topic.name),
                data=record,
                description=f'Live events {self.next_seq}-{self.next_seq + len(items) - 1} of `{self.topic.name}`',
                flow_run_id=self.flow_run_id,
                task_run_id=task_ctx.task_run.id if task_ctx is not None else None,
            )
        )
        self.next_seq += len(items)

    async def publish_from_flow(self, item: Any) -> None:
        """Publish one flow-side item, unless an earlier attempt of the flow run stored it already."""
        async with get_client() as client:
            await self._load(client)
            position = self._flow_items()
            self.owner.task_run_dynamic_keys[self._counter_key] = position + 1
            if position < self.stored_flow_items:
                return  # stored by an earlier attempt, which dispatched the same item at the same position
            await self._write(client, [item])

    async def publish_from_task(self, items: list[Any]) -> None:
        """Publish a batch of the model-request task's items (at least once: a re-executed task publishes again)."""
        async with get_client() as client:
            await self._load(client)
            await self._write(client, items)


_channel: ContextVar[LiveEventsChannel | None] = ContextVar('durable_prefect_live_events_channel', default=None)


@contextmanager
def run_channel(topic: EventStreamTopic | None, owner: FlowRunContext | None = None) -> Generator[None]:
    """Make the agent run inside this block publish to `topic` in the channel of `owner` (default: the current flow run).

    Outside a flow run, or without a topic, nothing is published.
    """
    owner = owner or FlowRunContext.get()
    if topic is None or owner is None or owner.flow_run is None:
        yield
        return
    token = _channel.set(LiveEventsChannel(topic, owner.flow_run.id, owner))
    try:
        yield
    finally:
        _channel.reset(token)


def current_channel() -> LiveEventsChannel | None:
    """The channel the current agent run publishes to, if it has a topic and runs in a flow."""
    return _channel.get()


async def publishing_stream(
    channel: LiveEventsChannel, stream: AsyncIterable[AgentStreamEvent]
) -> AsyncIterator[AgentStreamEvent]:
    """Pass `stream` through, publishing each event the model task did not publish (call it in flow code)."""
    async for event in stream:
        # The model's stream (parts, final-result marker) was published by the model-request task; in flow code the
        # same events are a replay of the recorded response.
        if not is_model_stream_event(event) and channel.topic.selects(event):
            await channel.publish_from_flow({'kind': 'event', 'event': dump_live_event(event)})
        yield event


async def publish_run_result(channel: LiveEventsChannel, result: AgentRunResult[Any]) -> None:
    """Publish the terminal `AgentRunResultEvent`, whatever the topic's filter (flow code, exactly once)."""
    await channel.publish_from_flow({'kind': 'result', 'event': dump_live_result(result)})


def publishing_handler(channel: LiveEventsChannel, handler: EventStreamHandler[Any] | None) -> EventStreamHandler[Any]:
    """The flow-side handler of an agent run with a topic: publish the events, then pass them on to `handler`."""

    async def publish_run_events(ctx: RunContext[Any], stream: AsyncIterable[AgentStreamEvent]) -> None:
        await handle_to_the_end(handler, ctx, publishing_stream(channel, stream))

    return publish_run_events


def topic_to_read(
    configured: EventStreamTopic | None, given: str | EventStreamTopic | None, owner: str
) -> EventStreamTopic:
    """The topic a `stream_agent_events` method reads (the kernel's `topic_to_read`), with Prefect's message.

    Raises:
        UserError: Neither exists.
    """
    return kernel_topic_to_read(
        given,
        configured,
        f'{owner} has no `event_stream_topic`, so its runs publish no live events: create it with '
        '`event_stream_topic="agent-events"` (or an `EventStreamTopic`), or pass `topic=` to read another one.',
    )


def model_stream_publisher(
    channel: LiveEventsChannel, handler: EventStreamHandler[Any] | None
) -> EventStreamHandler[Any]:
    """The handler a model-request task runs with a topic: publish the live stream in batches, then feed `handler`.

    The events are numbered within this execution of the task and carry the task's cache key, the same on every
    execution: a task that runs again is announced to the consumer by a `UnitRetryEvent`.
    """

    async def publish_model_stream(ctx: RunContext[Any], stream: AsyncIterable[AgentStreamEvent]) -> None:
        transaction = get_transaction()
        task_ctx = TaskRunContext.get()
        unit = (transaction.key if transaction is not None else None) or (
            str(task_ctx.task_run.id) if task_ctx is not None else 'model_request'
        )
        published = 0

        async with EventBatcher(channel.publish_from_task, channel.topic.batch_interval) as batcher:

            async def tee() -> AsyncIterator[AgentStreamEvent]:
                nonlocal published
                async for event in stream:
                    if channel.topic.selects(event):
                        batcher.add(
                            {
                                'kind': 'unit',
                                'unit': unit,
                                'label': _UNIT_LABEL,
                                'seq': published,
                                'event': dump_live_event(event),
                            }
                        )
                        published += 1
                    yield event

            await handle_to_the_end(handler, ctx, tee())

    return publish_model_stream


def _begins_attempt(item: Any) -> bool:
    """Whether a published item is the first event of a model-request task's attempt (its offset follows a gap)."""
    if not isinstance(item, dict):
        return False
    fields = cast('dict[str, Any]', item)
    return fields.get('kind') == 'unit' and fields.get('seq') == 0


# --- consumer -------------------------------------------------------------------------------------------------------


def _record(artifact: Artifact) -> dict[str, Any]:
    data = artifact.data
    if not isinstance(data, dict) or 'items' not in data:
        raise UserError(
            f'The artifact {artifact.id} of type {artifact.type!r} was not written by an `event_stream_topic`: '
            f'artifact types starting with {ARTIFACT_TYPE_PREFIX!r} are reserved for live events.'
        )
    return cast('dict[str, Any]', data)


def _decode(item: dict[str, Any], decoder: LiveEventDecoder) -> Any:
    kind = item['kind']
    if kind == 'event':
        return decoder.event(item['event'])
    if kind == 'unit':
        event = decoder.event(item['event'])
        return UnitEvent(unit=item['unit'], seq=item['seq'], event=event, label=item['label'])
    if kind == 'result':
        return decoder.result(item['event'])
    raise UserError(f'A live-event record holds an item of an unknown kind {kind!r}: upgrade `durable-prefect`.')


async def _new_items(client: PrefectClient, flow_run_id: UUID, topic: str, next_seq: int) -> dict[int, Any]:
    """The stored items at offsets `>= next_seq`: records newest first, until one that ends before `next_seq`."""
    artifact_filter = ArtifactFilter(
        flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]), type=ArtifactFilterType(any_=[_artifact_type(topic)])
    )
    found: dict[int, Any] = {}
    offset = 0
    while True:
        page = await client.read_artifacts(
            artifact_filter=artifact_filter, sort=ArtifactSort.CREATED_DESC, limit=_PAGE, offset=offset
        )
        reached_known = False
        for artifact in page:
            record = _record(artifact)
            first: int = record['first']
            for index, item in enumerate(record['items']):
                if first + index >= next_seq:
                    found[first + index] = item
            # The producer writes one record at a time, so older records hold older offsets.
            reached_known = reached_known or first + len(record['items']) <= next_seq
        if reached_known or len(page) < _PAGE:
            return found
        offset += _PAGE


def stream_agent_events(
    flow_run_id: UUID | str,
    topic: str | EventStreamTopic,
    *,
    output_type: Any = Any,
    from_offset: int = 0,
    polling_interval: timedelta = DEFAULT_POLLING_INTERVAL,
) -> DurableAgentRunEvents[Any]:
    """The live events of the agent run in the Prefect flow run `flow_run_id`, published to `topic`.

    Read from any process that reaches the Prefect API (the one `get_client()` connects to), while the run executes
    or after it ended. The events come in order, each once, ending with the `AgentRunResultEvent` that carries the
    run's result. Iteration also ends, without that event, when the flow run reaches a final state without
    publishing it (it failed, crashed for good or was cancelled: its state says which).

    Args:
        flow_run_id: The flow run the agent ran in: for `PrefectDurability`, your flow's run; for `PrefectAgent.run`,
            its `{name} Run` flow run at top level, or the calling flow's run when it is a subflow.
        topic: The agent's `event_stream_topic` (or its name).
        output_type: The agent's output type, to decode the result's output; `Any` gives it as JSON data.
        from_offset: Where to start: `0`, or `events.offset + 1` of an earlier consumer to continue after its last
            event.
        polling_interval: How often to ask the API for new records.

    Returns:
        The events, as the kernel's `DurableAgentRunEvents` (an async iterator and async context manager).

    Raises:
        UserError: `from_offset` is negative, or the polling interval is not positive.
    """
    name = topic.name if isinstance(topic, EventStreamTopic) else topic
    if not name:
        raise UserError('`stream_agent_events` needs the topic the agent publishes to, e.g. `topic="agent-events"`.')
    if from_offset < 0:
        raise UserError(
            f'`from_offset` must be 0 or an offset the events gave (`events.offset + 1`), not {from_offset}.'
        )
    interval = polling_interval.total_seconds()
    if interval <= 0:
        raise UserError(f'`polling_interval` must be greater than zero, not {polling_interval!r}.')
    run_id = flow_run_id if isinstance(flow_run_id, UUID) else UUID(str(flow_run_id))
    decoder = LiveEventDecoder(output_type)

    async def items() -> AsyncIterator[tuple[int, Any]]:
        # A resumed consumer reads from the start too: the kernel counts the attempts the model tasks began before
        # `from_offset` (without yielding their events), so that a task's retry after it is announced.
        next_seq = 0
        pending: dict[int, Any] = {}
        state_checked = time.monotonic()
        async with get_client() as client:
            while True:
                pending.update(await _new_items(client, run_id, name, next_seq))
                delivered = False
                while True:
                    if next_seq not in pending and _begins_attempt(pending.get(next_seq + 1)):
                        next_seq += 1  # the gap before an attempt (see `LiveEventsChannel._write`)
                    if next_seq not in pending:
                        break
                    raw = pending.pop(next_seq)
                    if next_seq >= from_offset or _begins_attempt(raw):
                        item = _decode(raw, decoder)
                        delivered = True
                        yield next_seq, item
                        if isinstance(item, AgentRunResultEvent):
                            return
                    next_seq += 1
                if not delivered and time.monotonic() - state_checked >= 1.0:
                    # Quiet for a while: a flow run that ended without a terminal event will publish nothing more.
                    state_checked = time.monotonic()
                    flow_run = await client.read_flow_run(run_id)
                    if flow_run.state is not None and flow_run.state.is_final():
                        pending.update(await _new_items(client, run_id, name, next_seq))
                        if next_seq not in pending:
                            return
                        continue
                await asyncio.sleep(interval)

    return DurableAgentRunEvents(items(), from_offset=from_offset)
