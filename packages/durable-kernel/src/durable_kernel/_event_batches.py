"""Hand an agent's event stream to a durable event handler in batches instead of one durable unit per event.

Workflow code cannot run an event stream handler (it does I/O), so the engines hand the events of a run's tool calls
to the handler inside durable units. One unit per event is what the reference does; it doubles the units of a run
with tool calls and holds the tool calls back until each of their events has been handled.

`forward_event_batches` pulls the stream as fast as it yields and sends what has accumulated whenever the previous
send has finished: the events that the agent graph yields together (the tool-call events of a model response, the
result events of calls that finished together) reach the handler in one unit, and the tool calls run while their
call events are being handled. Events keep their order, a send starts only after the previous one finished, and the
function returns only once every event has been sent.

Which events share a batch depends only on when the stream blocks and when sends finish, so it is the same on every
execution of a deterministic workflow (Temporal replays the same activations in the same order).

`handle_to_the_end` is the other half of handing a stream over: the user's handler reads what it wants, and whatever
the events do on their way (a live-events tap publishes them) still happens to every one of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any, TypeVar

from pydantic_ai.agent import EventStreamHandler
from pydantic_ai.messages import AgentStreamEvent
from pydantic_ai.tools import RunContext

__all__ = ('forward_event_batches', 'handle_to_the_end')

EventT = TypeVar('EventT')


async def handle_to_the_end(
    handler: EventStreamHandler[Any] | None, ctx: RunContext[Any], events: AsyncIterable[AgentStreamEvent]
) -> None:
    """Give `events` to `handler` (if there is one), then read whatever it left unread.

    A handler may stop reading early, or there may be none: the events it did not read still pass through whatever
    `events` does on their way (a live-events tap publishes them all the same). An error of the handler propagates
    at once, with the rest unread.

    Args:
        handler: The user's event stream handler, or `None`.
        ctx: The run context the handler receives.
        events: The events, typically the stream wrapped in a publishing tap.
    """
    if handler is not None:
        await handler(ctx, events)
    async for _ in events:
        pass


async def forward_event_batches(
    stream: AsyncIterable[EventT],
    send: Callable[[list[EventT]], Awaitable[None]],
) -> int:
    """Consume `stream` and pass its events to `send` in order, in as few calls as the stream's pace allows.

    The stream is consumed in the calling task (so context variables set around this call apply to it); each send
    runs in a task of its own, started when the stream next blocks, and takes every event that arrived until then.

    Args:
        stream: The events to forward, typically the stream given to an event stream handler.
        send: Sends one non-empty batch to the durable handler (an activity, a step, a task).

    Returns:
        The number of batches sent.

    Raises:
        Exception: What the stream or a send raised; a send still in flight when the stream fails is cancelled.
    """
    pending: list[EventT] = []
    in_flight: asyncio.Task[None] | None = None
    sent = 0

    async def send_pending() -> None:
        # Runs once the stream blocks: takes everything that arrived until then.
        nonlocal sent
        while pending:
            batch = pending.copy()
            pending.clear()
            sent += 1
            await send(batch)

    try:
        async for event in stream:
            pending.append(event)
            if in_flight is not None and in_flight.done():
                in_flight.result()  # re-raise a failed send now
                in_flight = None
            if in_flight is None:
                in_flight = asyncio.ensure_future(send_pending())
        if in_flight is not None:
            await in_flight
            in_flight = None
        # Events that arrived after the last send had taken its batch.
        await send_pending()
    except BaseException:
        if in_flight is not None and not in_flight.done():
            in_flight.cancel()
        raise
    return sent
