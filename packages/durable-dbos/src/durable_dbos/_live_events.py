"""Live events on DBOS: a run publishes its events to a DBOS workflow stream, any process sharing the database reads it.

The channel is the workflow's own stream (`DBOS.write_stream` under the topic's name): it lives in the system database
next to the workflow's steps, so a consumer needs nothing but the database (a `DBOSClient` will do), and DBOS ends a
reader when the stream is closed or the workflow has finished.

Two writers, with DBOS's two guarantees:

- the events of the agent graph (tool calls, tool results, the terminal `AgentRunResultEvent`) are written from workflow code, where `DBOS.write_stream` is checkpointed: one step id per
  write, exactly once, and a recovered workflow replays the write instead of repeating it;
- a streamed model response's events are produced inside the model-request step, which writes directly (no step
  id, at least once), in batches (`EventBatcher`, one write per `batch_interval`). A step that runs again (a DBOS step
  retry, or its workflow recovered after a crash) publishes its events again from the start: they travel in the
  kernel's `UnitEvent` envelope (unit = the step's id, seq = the index in this attempt), so the consumer announces
  the repetition with a `UnitRetryEvent`.

Offsets: a stream row holds one batch, so the offset a consumer sees is `row * ROW_SPAN + index in the row`: it
increases, and `offset + 1` resumes right after an event, also in the middle of a batch. The offset before a row's
first event is never an event's own (a row holds fewer than `ROW_SPAN` events), the gap the kernel's retry marker
needs. A resumed consumer reads the rows before its offset as well: the kernel counts the attempts the model steps
began there (`DurableAgentRunEvents(from_offset=...)`).

Wire format (JSON-able, written with DBOS's serializer): `{'kind': 'event', 'event': ...}`,
`{'kind': 'unit', 'unit': ..., 'label': ..., 'seq': ..., 'events': [...]}` and `{'kind': 'result', 'event': ...}`;
events and the result are dumped and typed again with the kernel's `dump_live_event`, `dump_live_result` and
`LiveEventDecoder`.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AbstractContextManager
from contextvars import ContextVar
from datetime import timedelta
from typing import Any, cast

from dbos import DBOS, DBOSClient
from pydantic_ai.agent import AgentRunResult, EventStreamHandler
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import AgentStreamEvent
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
    scoped_context_value,
    topic_to_read,
)

__all__ = (
    'ROW_SPAN',
    'configured_topic',
    'current_event_stream_topic',
    'model_stream_publisher',
    'publish_run_result',
    'publishing_stream',
    'require_workflow_streams',
    'run_event_stream_topic',
    'stream_agent_events',
)

ROW_SPAN = 1000
"""Consumer offsets are `row * ROW_SPAN + index`; a row holds at most `ROW_SPAN - 1` events."""

_UNIT_LABEL = 'model_request'


_run_topic: ContextVar[EventStreamTopic | None] = ContextVar('_durable_dbos_event_stream_topic', default=None)


def require_workflow_streams() -> None:
    """Raise a `UserError` when the installed DBOS has no workflow streams (the channel of live events)."""
    if not all(hasattr(DBOS, name) for name in ('write_stream_async', 'close_stream_async', 'read_stream_async')):
        raise UserError(
            '`event_stream_topic` publishes to DBOS workflow streams, which this DBOS version does not have: '
            'upgrade `dbos` to a release with `DBOS.write_stream_async`, or remove `event_stream_topic`.'
        )


def run_event_stream_topic(topic: EventStreamTopic | None) -> AbstractContextManager[None]:
    """Make `topic` the one this agent run publishes to (its model steps read it)."""
    return scoped_context_value(_run_topic, topic)


def current_event_stream_topic() -> EventStreamTopic | None:
    """The topic of the agent run the caller belongs to, if it has one."""
    return _run_topic.get()


# --- producer: workflow code -------------------------------------------------------------------------------------


async def publishing_stream(
    topic: EventStreamTopic, stream: AsyncIterable[AgentStreamEvent]
) -> AsyncIterator[AgentStreamEvent]:
    """Pass `stream` through, publishing each event the model step did not publish (call in workflow code).

    Each write is a checkpointed `DBOS.write_stream` (a step id of its own), made before the event goes on, so the
    events and the steps of a handler or of tool calls take their ids in the same order on every execution.
    """
    async for event in stream:
        # A model's stream events (the final-result marker too) are the model step's to publish; in workflow code
        # they are a replay of its recorded response (pydantic-ai 2.x replays the parts).
        if not is_model_stream_event(event) and topic.selects(event):
            await DBOS.write_stream_async(topic.name, {'kind': 'event', 'event': dump_live_event(event)})
        yield event


async def publish_run_result(topic: EventStreamTopic, result: AgentRunResult[Any], *, close: bool) -> None:
    """Publish the terminal `AgentRunResultEvent` (always, whatever the topic's filter), then close if asked."""
    await DBOS.write_stream_async(topic.name, {'kind': 'result', 'event': dump_live_result(result)})
    if close:
        await DBOS.close_stream_async(topic.name)


# --- producer: inside the model-request step ---------------------------------------------------------------------


def model_stream_publisher(topic: EventStreamTopic, handler: EventStreamHandler[Any] | None) -> EventStreamHandler[Any]:
    """The handler a model-request step runs with a topic: publish the live stream in batches, and feed `handler`.

    Runs inside the step, where a DBOS stream write is direct (no step id): at least once. The events carry the step
    id and their index in this attempt, so a repeated step is told apart by the consumer.
    """

    async def publish(ctx: RunContext[Any], stream: AsyncIterable[AgentStreamEvent]) -> None:
        unit = str(DBOS.step_id)
        published = 0

        async def send(batch: list[Any]) -> None:
            nonlocal published
            # Fewer than ROW_SPAN events a row: the offset before a row's first event is never an event's own.
            for start in range(0, len(batch), ROW_SPAN - 1):
                chunk = batch[start : start + ROW_SPAN - 1]
                row = {'kind': 'unit', 'unit': unit, 'label': _UNIT_LABEL, 'seq': published, 'events': chunk}
                await DBOS.write_stream_async(topic.name, row)
                published += len(chunk)

        async with EventBatcher(send, topic.batch_interval) as batcher:

            async def tee() -> AsyncIterator[AgentStreamEvent]:
                async for event in stream:
                    if topic.selects(event):
                        batcher.add(dump_live_event(event))
                    yield event

            await handle_to_the_end(handler, ctx, tee())

    return publish


# --- consumer ----------------------------------------------------------------------------------------------------


def _decode_row(value: Any, decoder: LiveEventDecoder) -> list[Any]:
    row: dict[str, Any] = cast(dict[str, Any], value) if isinstance(value, dict) else {}
    if 'kind' not in row:
        raise UserError(
            f'The DBOS stream holds a value that no `event_stream_topic` wrote ({type(cast(object, value)).__name__}): '
            'give live '
            'events a stream key (topic name) of their own.'
        )
    kind = row['kind']
    if kind == 'event':
        return [decoder.event(row['event'])]
    if kind == 'unit':
        events: list[Any] = row['events']
        return [
            UnitEvent(
                unit=row['unit'],
                seq=row['seq'] + index,
                event=decoder.event(event),
                label=row['label'],
            )
            for index, event in enumerate(events)
        ]
    if kind == 'result':
        return [decoder.result(row['event'])]
    raise UserError(f'The DBOS stream holds a live-event row of an unknown kind {kind!r}: upgrade `durable-dbos`.')


def configured_topic(
    passed: str | EventStreamTopic | None, configured: EventStreamTopic | None, *, owner: str
) -> EventStreamTopic:
    """The topic a `stream_agent_events` method reads (the kernel's `topic_to_read`), with DBOS's message.

    Raises:
        UserError: Neither is set.
    """
    return topic_to_read(
        passed,
        configured,
        f'{owner} publishes no live events: pass `event_stream_topic="..."` to it, or `topic=` to '
        '`stream_agent_events`.',
    )


def stream_agent_events(
    workflow_id: str,
    topic: str | EventStreamTopic,
    *,
    output_type: Any = Any,
    from_offset: int = 0,
    polling_interval: timedelta | None = None,
    client: DBOSClient | None = None,
) -> DurableAgentRunEvents[Any]:
    """The live events of the agent run in the DBOS workflow `workflow_id`, published to `topic`.

    Read from any process that shares the DBOS system database: one where DBOS is launched, or pass a `DBOSClient`.
    The events arrive in order while the run executes, ending with the `AgentRunResultEvent` that carries the run's
    result. Iteration also ends, without that event, when the workflow ends without publishing it (it failed or was
    cancelled): read the workflow's own result (`DBOS.retrieve_workflow(workflow_id)`) for what happened.

    Args:
        workflow_id: The workflow running the agent (for `DBOSAgent.run`, the `run` workflow; `run_sync`'s events are
            in its child `run` workflow).
        topic: The agent's `event_stream_topic` (or its name).
        output_type: The agent's output type, to decode the result's output; `Any` gives it as JSON data.
        from_offset: Where to start: `0`, or `events.offset + 1` of an earlier consumer to continue after its last
            event.
        polling_interval: How often to look for new rows where DBOS cannot be notified of them (SQLite, or a
            consumer in another process than the writer); DBOS's configured interval (1 s by default) if omitted.
        client: Read through this `DBOSClient` instead of the launched DBOS of this process.

    Returns:
        The events, as the kernel's `DurableAgentRunEvents` (an async iterator and async context manager).

    Raises:
        UserError: `from_offset` is negative, or the polling interval is not positive. (Iterating raises DBOS's
            `DBOSNonExistentWorkflowError` when no workflow has this id yet: read once the workflow has started.)
    """
    name = topic.name if isinstance(topic, EventStreamTopic) else topic
    if from_offset < 0:
        raise UserError(
            f'`from_offset` must be 0 or an offset the events gave (`events.offset + 1`), not {from_offset}.'
        )
    interval = polling_interval.total_seconds() if polling_interval is not None else None
    if interval is not None and interval <= 0:
        raise UserError(f'`polling_interval` must be greater than zero, not {polling_interval!r}.')
    decoder = LiveEventDecoder(output_type)
    first_row = from_offset // ROW_SPAN

    async def items() -> AsyncIterator[tuple[int, Any]]:
        # A resumed consumer reads the rows before `from_offset` too: the kernel counts the attempts the model steps
        # began there (without yielding their events), so that a step's retry after `from_offset` is announced.
        if client is not None:
            rows = client.read_stream_async(workflow_id, name, polling_interval_sec=interval)
        else:
            rows = DBOS.read_stream_async(workflow_id, name, polling_interval_sec=interval)
        try:
            row = 0
            async for value in rows:
                for index, item in enumerate(_decode_row(value, decoder)):
                    if row >= first_row or isinstance(item, UnitEvent):
                        yield row * ROW_SPAN + index, item
                row += 1
        finally:
            await rows.aclose()

    return DurableAgentRunEvents(items(), from_offset=from_offset)
