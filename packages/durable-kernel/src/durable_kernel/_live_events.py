"""Live events: a durable run's `AgentStreamEvent`s delivered to callers outside the run, the same way on every engine.

An `event_stream_handler` runs inside the engine's durable units, so its events stay in the worker. A web frontend
wants them where it is: in another process, while the run executes. Each engine has a durable channel for that
(Temporal: Workflow Streams; DBOS: workflow streams; Prefect: see `durable_prefect`), and each engine package uses its
own. What is the same on every engine lives here:

- `EventStreamTopic`: what a run publishes, where, and how often a durable unit flushes what it buffered;
- `EventBatcher`: the buffer a durable unit publishes its model-stream events through, so that a long model stream
  costs one write per interval, not one per token;
- `UnitRetryEvent`: what a consumer receives before the events of a unit that runs again (an activity retry, a step
  re-executed after a crash): the events it published before are not taken back, so the consumer is told to drop
  the partial response it showed;
- `DurableAgentRunEvents`: what a consumer iterates: the events in order, each with its offset in the channel, and
  the terminal `AgentRunResultEvent` that ends the run's stream;
- `dump_live_event`, `dump_live_result` and `LiveEventDecoder`: the JSON form of events and of the terminal result for
  channels that store plain data (DBOS streams, Prefect artifacts), typed again on the consumer's side.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, Literal, TypeVar, Union, cast, get_origin

from pydantic import TypeAdapter
from pydantic_ai import messages as pai_messages
from pydantic_ai.exceptions import UserError
from pydantic_ai.output import OutputDataT
from pydantic_ai.run import AgentRunResult, AgentRunResultEvent

__all__ = (
    'DEFAULT_BATCH_INTERVAL',
    'DurableAgentRunEvents',
    'EventBatcher',
    'EventStreamTopic',
    'LiveEventDecoder',
    'UnitEvent',
    'UnitRetryEvent',
    'coerce_event_stream_topic',
    'decodable_output_type',
    'dump_live_event',
    'dump_live_result',
    'topic_to_read',
)

ItemT = TypeVar('ItemT')

DEFAULT_BATCH_INTERVAL = timedelta(milliseconds=100)
"""How often a durable unit flushes the events it buffered.

Engines' own defaults are made for status updates (Temporal's Workflow Streams flush every 2 s); a UI that shows
tokens as they come needs a tenth of a second. Every flush is a durable write (a signal, a row, an event), so the
interval is what a long model stream costs.
"""


@dataclass(frozen=True)
class EventStreamTopic:
    """Where a durable agent run publishes its events, which ones, and how often they are flushed.

    Pass it (or just its name, for the default settings) as `event_stream_topic=` to an engine's durability
    capability or wrapper agent; the engine's `stream_agent_events` reads it back.
    """

    name: str
    """The topic name; different agents, or different purposes, belong on different topics."""

    events: Callable[[pai_messages.AgentStreamEvent], bool] | None = None
    """Which events to publish (all by default). The terminal `AgentRunResultEvent` is always published.

    A model stream yields a `PartDeltaEvent` per token and every published event is stored by the engine for the
    life of the run; dropping deltas cuts both.
    """

    batch_interval: timedelta = DEFAULT_BATCH_INTERVAL
    """How often a durable unit (a model request) flushes the events it buffered to the channel."""

    def __post_init__(self) -> None:
        if not self.name:
            raise UserError('An event stream topic needs a name, e.g. `event_stream_topic="agent-events"`.')
        if self.batch_interval <= timedelta(0):
            raise UserError(
                f'The event stream batch interval must be greater than zero, not {self.batch_interval!r}; '
                'use a small interval such as `timedelta(milliseconds=50)` to flush often.'
            )

    def selects(self, event: pai_messages.AgentStreamEvent) -> bool:
        """Whether `event` is published to this topic."""
        return self.events is None or self.events(event)


def coerce_event_stream_topic(topic: str | EventStreamTopic | None) -> EventStreamTopic | None:
    """An `event_stream_topic=` argument as a topic: a name becomes a topic with the default settings."""
    if topic is None or isinstance(topic, EventStreamTopic):
        return topic
    if isinstance(topic, str):  # pyright: ignore[reportUnnecessaryIsInstance]
        return EventStreamTopic(topic)
    raise UserError(f'`event_stream_topic` must be a topic name or an `EventStreamTopic`, not {type(topic).__name__}.')


def topic_to_read(
    given: str | EventStreamTopic | None, configured: EventStreamTopic | None, missing: str
) -> EventStreamTopic:
    """The topic a durable agent's `stream_agent_events` reads: the one passed, else the one it publishes to.

    Args:
        given: The call's `topic=`.
        configured: The agent's or capability's `event_stream_topic`.
        missing: The `UserError` message when neither is set (the engine's: it says how to create its topic).

    Returns:
        The topic.

    Raises:
        UserError: Neither is set.
    """
    chosen = coerce_event_stream_topic(given) if given is not None else configured
    if chosen is None:
        raise UserError(missing)
    return chosen


@dataclass
class UnitRetryEvent:
    """Published before the events of a durable unit that runs again after it failed or its worker died.

    The events the unit published on its earlier attempt stay in the channel (a durable channel takes nothing
    back): a consumer that showed a partial model response should discard it when it receives this event, since
    the response is being produced again from its start.
    """

    unit: str
    """The unit that runs again, e.g. `model_request` or a tool's name."""

    attempt: int
    """The attempt that starts now (2 for the first retry)."""

    event_kind: Literal['durable_unit_retry'] = 'durable_unit_retry'
    """Discriminator, as on pydantic-ai's events."""


@dataclass
class UnitEvent:
    """An event published from inside a durable unit, numbered within the unit's attempt.

    Engines that cannot tell a unit's re-execution from its first one (a DBOS step or a Prefect task re-run after its
    worker died starts afresh) publish model-stream events in this envelope; `DurableAgentRunEvents` sees a unit
    start numbering again from 0 and yields a `UnitRetryEvent` before the repeated events.
    """

    unit: str
    """Identifies the unit within the run (for example its step number); the same on every attempt."""

    seq: int
    """The event's index among the events this attempt of the unit published."""

    event: Any
    """The `AgentStreamEvent`."""

    label: str = 'model_request'
    """What the unit is, for the `UnitRetryEvent` (e.g. `model_request`)."""


class EventBatcher(Generic[ItemT]):
    """Buffer the items a durable unit publishes and send them in batches, every `interval` and once at the end.

    Use as an async context manager around the unit's streaming: `add` never waits; a background task sends what
    accumulated every interval (one send at a time, in order), and leaving the block sends the rest, also when the
    block raised, so that a consumer sees everything the unit produced before it failed.
    """

    def __init__(self, send: Callable[[list[ItemT]], Awaitable[None]], interval: timedelta = DEFAULT_BATCH_INTERVAL):
        """Build a batcher.

        Args:
            send: Writes one non-empty batch to the engine's channel.
            interval: How long items may wait in the buffer.
        """
        self._send = send
        self._interval = interval.total_seconds()
        self._pending: list[ItemT] = []
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._sending: asyncio.Future[None] | None = None
        self.batches = 0
        """How many batches were sent (a figure for tests and benchmarks)."""

    def add(self, item: ItemT) -> None:
        """Buffer one item; it is sent within `interval`."""
        self._pending.append(item)
        self._wake.set()

    async def _flush(self) -> None:
        if self._pending:
            batch = self._pending
            self._pending = []
            self.batches += 1
            await self._send(batch)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self._interval)
            # Shielded: leaving the block cancels this loop, which must not cut a batch's write in half.
            self._sending = asyncio.ensure_future(self._flush())
            await asyncio.shield(self._sending)

    async def __aenter__(self) -> EventBatcher[ItemT]:
        self._flusher = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher  # a send that failed in the background raises here
        if self._sending is not None and not self._sending.done():
            await self._sending
        await self._flush()


@dataclass
class _Terminal:
    result: AgentRunResult[Any] | None = None
    done: bool = False


class DurableAgentRunEvents(Generic[OutputDataT], AsyncIterator[Any]):
    """The events of one durable agent run, read from outside the run: what `stream_agent_events` returns.

    It yields the run's `AgentStreamEvent`s in order (and a `UnitRetryEvent` before the events of a unit that runs
    again), ending with the `AgentRunResultEvent` that carries the result. A consumer that stops early and comes back
    passes `from_offset=events.offset + 1` and continues exactly where it left off.

    A unit's retry is announced also to a consumer that resumes in the middle of the unit's earlier attempt: the
    engine passes the unit events before `from_offset` too (they are counted, not yielded). The marker takes the
    offset just before the repeated attempt's first event, so an engine that envelops events in `UnitEvent` must
    leave that offset to no event of its own (a gap): then a consumer resuming at the attempt's first event is one
    that has had the marker, and any other consumer resumes before it and gets it.
    """

    def __init__(
        self,
        items: AsyncIterator[tuple[int, Any]],
        *,
        from_offset: int = 0,
        on_result: Callable[[AgentRunResultEvent[Any]], Awaitable[None]] | None = None,
        close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Wrap an engine's subscription.

        Args:
            items: `(offset, event)` pairs in channel order, decoded; the terminal event is an `AgentRunResultEvent`
                (or a subclass of it carrying engine data). Ends when the channel ends without one (the run failed
                or was cancelled: the engine's own result says which). Items at offsets below `from_offset` are
                not yielded: an engine passes the `UnitEvent`s there (or all it read) so that a retry of a unit
                whose earlier attempt began before `from_offset` is announced.
            from_offset: The offset the consumer resumes at (`0` for a new consumer).
            on_result: Called once with the terminal event before it is yielded (Temporal acknowledges it, so the
                workflow can finish).
            close: Stops the subscription when the consumer stops early.
        """
        self._items = items
        self._from_offset = from_offset
        self._on_result = on_result
        self._close = close
        self._offset = -1
        self._terminal = _Terminal()
        self._closed = False
        self._attempts: dict[str, int] = {}
        self._held: tuple[int, Any] | None = None

    @property
    def offset(self) -> int:
        """The channel offset of the last event yielded, `-1` before the first; resume with `offset + 1`."""
        return self._offset

    @property
    def result(self) -> AgentRunResult[OutputDataT] | None:
        """The run's result, once the terminal event has been yielded."""
        return self._terminal.result

    def __aiter__(self) -> DurableAgentRunEvents[OutputDataT]:
        return self

    async def __anext__(self) -> Any:
        if self._held is not None:
            (self._offset, event), self._held = self._held, None
            return event
        if self._terminal.done:
            raise StopAsyncIteration
        while True:
            try:
                offset, event = await anext(self._items)
            except StopAsyncIteration:
                self._terminal.done = True
                raise
            if offset >= self._from_offset:
                break
            # Before the consumer's offset: it had these already; only the attempts they began are counted.
            if isinstance(event, UnitEvent) and event.seq == 0:
                self._attempts[event.unit] = self._attempts.get(event.unit, 0) + 1
        self._offset = offset
        if isinstance(event, UnitEvent):
            if event.seq == 0:
                attempt = self._attempts.get(event.unit, 0) + 1
                self._attempts[event.unit] = attempt
                # At `from_offset` itself the consumer resumes right after the marker it received (see the class).
                if attempt > 1 and offset != self._from_offset:
                    # The unit runs again: say so first, then give its first event on the next call. The marker
                    # keeps the offset before that event, so a consumer that resumes after it misses nothing.
                    self._held = (offset, event.event)
                    self._offset = offset - 1
                    return UnitRetryEvent(unit=event.label, attempt=attempt)
            return event.event
        if isinstance(event, AgentRunResultEvent):
            terminal = cast('AgentRunResultEvent[Any]', event)
            result: AgentRunResult[Any] = terminal.result
            self._terminal = _Terminal(result=result, done=True)
            await self.aclose()
            if self._on_result is not None:
                await self._on_result(terminal)
            return AgentRunResultEvent(result)
        return event

    async def aclose(self) -> None:
        """Stop the subscription. Reaching the terminal event does it; call it (or use `async with`) to stop early."""
        if self._closed:
            return
        self._closed = True
        if self._close is not None:
            await self._close()
        else:
            aclose = getattr(self._items, 'aclose', None)
            if aclose is not None:
                await aclose()

    async def __aenter__(self) -> DurableAgentRunEvents[OutputDataT]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


_event_adapter: TypeAdapter[pai_messages.AgentStreamEvent] = TypeAdapter(pai_messages.AgentStreamEvent)
_any_result_adapter: TypeAdapter[AgentRunResultEvent[Any]] = TypeAdapter(AgentRunResultEvent[Any])


def dump_live_event(event: pai_messages.AgentStreamEvent) -> Any:
    """An event as JSON-ready data (what `LiveEventDecoder.event` reads back)."""
    return _event_adapter.dump_python(event, mode='json')


def dump_live_result(result: AgentRunResult[Any]) -> Any:
    """A run's result, as the terminal event's JSON-ready data: output, messages, usage (`LiveEventDecoder.result`)."""
    return _any_result_adapter.dump_python(AgentRunResultEvent(result), mode='json')


def decodable_output_type(output_type: Any) -> Any:
    """The type a terminal event's output is decoded as, for an agent's `output_type` (an output spec).

    A type (or a union, a generic alias) is itself; a list of them, such as `[str, DeferredToolRequests]` (the usual
    spec of an agent whose tools may need approval), is their union, so that a consumer receives the pending
    `DeferredToolRequests` as such; anything else (`ToolOutput`, `NativeOutput`, an output function) is `Any`: the
    output stays JSON data.
    """
    if isinstance(output_type, Sequence) and not isinstance(output_type, str):
        members = [decodable_output_type(member) for member in cast('Sequence[Any]', output_type)]
        if not members or any(member is Any for member in members):
            return Any
        return members[0] if len(members) == 1 else Union[tuple(members)]  # noqa: UP007 - built at run time
    if isinstance(output_type, type) or get_origin(output_type) is not None:
        return output_type
    return Any


class LiveEventDecoder:
    """Types again what `dump_live_event` and `dump_live_result` wrote, the output as the agent's output type."""

    def __init__(self, output_type: Any = Any) -> None:
        """Build a decoder.

        Args:
            output_type: The agent's output type: the terminal event's output is validated as it (`Any`: as stored).
                An output spec is reduced by `decodable_output_type`.
        """
        output_type = decodable_output_type(output_type)
        self._result_adapter: TypeAdapter[AgentRunResultEvent[Any]] = (
            _any_result_adapter if output_type is Any else TypeAdapter(AgentRunResultEvent[output_type])  # pyright: ignore[reportInvalidTypeForm]
        )

    def event(self, data: Any) -> pai_messages.AgentStreamEvent:
        """An `AgentStreamEvent` from its dumped data."""
        return _event_adapter.validate_python(data)

    def result(self, data: Any) -> AgentRunResultEvent[Any]:
        """The terminal `AgentRunResultEvent` from its dumped data."""
        return self._result_adapter.validate_python(data)
