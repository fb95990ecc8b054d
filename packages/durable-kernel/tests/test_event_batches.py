"""`forward_event_batches`: events reach the handler in order, batched by the stream's pace; `handle_to_the_end`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import pytest
from pydantic_ai import RunContext
from pydantic_ai.messages import AgentStreamEvent, PartStartEvent, TextPart
from pydantic_ai.models.test import TestModel
from pydantic_ai.usage import RunUsage

from durable_kernel import forward_event_batches, handle_to_the_end

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return 'asyncio'


async def paced(groups: list[list[int]], pause: float = 0.01) -> AsyncIterator[int]:
    """Yield each group's events back to back, blocking between groups (as a graph does while tools run)."""
    for index, group in enumerate(groups):
        if index:
            await asyncio.sleep(pause)
        for event in group:
            yield event


async def test_events_yielded_together_share_a_send_and_keep_their_order() -> None:
    batches: list[list[int]] = []

    async def send(batch: list[int]) -> None:
        batches.append(batch)

    count = await forward_event_batches(paced([[1, 2], [3, 4, 5], [6]]), send)

    assert batches == [[1, 2], [3, 4, 5], [6]]
    assert count == 3


async def test_events_arriving_during_a_slow_send_go_in_the_next_one() -> None:
    batches: list[list[int]] = []

    async def slow_send(batch: list[int]) -> None:
        batches.append(batch)
        await asyncio.sleep(0.05)

    await forward_event_batches(paced([[1], [2], [3], [4]], pause=0.01), slow_send)

    assert batches[0] == [1]
    assert [event for batch in batches for event in batch] == [1, 2, 3, 4]
    assert len(batches) < 4


async def test_returns_only_after_the_last_send_finished() -> None:
    finished: list[int] = []

    async def send(batch: list[int]) -> None:
        await asyncio.sleep(0.02)
        finished.extend(batch)

    await forward_event_batches(paced([[1, 2]]), send)

    assert finished == [1, 2]


async def test_empty_stream_sends_nothing() -> None:
    async def send(batch: list[int]) -> None:
        raise AssertionError('no events, no send')

    assert await forward_event_batches(paced([]), send) == 0


async def test_a_failing_send_fails_the_forwarding() -> None:
    async def send(batch: list[int]) -> None:
        raise RuntimeError(f'handler failed on {batch}')

    with pytest.raises(RuntimeError, match=r'handler failed on \[1\]'):
        await forward_event_batches(paced([[1], [2], [3]]), send)


async def test_a_failing_stream_cancels_the_send_in_flight() -> None:
    cancelled = asyncio.Event()

    async def send(batch: list[int]) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def broken() -> AsyncIterator[int]:
        yield 1
        await asyncio.sleep(0.01)
        raise ValueError('stream broke')

    with pytest.raises(ValueError, match='stream broke'):
        await forward_event_batches(broken(), send)
    await asyncio.sleep(0)
    assert cancelled.is_set()


def part_starts(count: int) -> list[PartStartEvent]:
    return [PartStartEvent(index=index, part=TextPart(content=str(index))) for index in range(count)]


async def tapped(events: list[PartStartEvent], seen: list[int]) -> AsyncIterator[AgentStreamEvent]:
    """A publishing tap: records the index of each event that passes."""
    for event in events:
        seen.append(event.index)
        yield event


def run_context() -> RunContext[None]:
    return RunContext(deps=None, model=TestModel(), usage=RunUsage())


async def test_events_a_handler_leaves_unread_pass_the_tap_all_the_same() -> None:
    seen: list[int] = []
    read: list[AgentStreamEvent] = []
    events = part_starts(3)

    async def first_only(ctx: RunContext[Any], stream: AsyncIterable[AgentStreamEvent]) -> None:
        async for event in stream:
            read.append(event)
            break

    await handle_to_the_end(first_only, run_context(), tapped(events, seen))
    assert read == events[:1]
    assert seen == [0, 1, 2]


async def test_without_a_handler_every_event_passes_the_tap() -> None:
    seen: list[int] = []
    await handle_to_the_end(None, run_context(), tapped(part_starts(3), seen))
    assert seen == [0, 1, 2]


async def test_a_handlers_error_propagates_with_the_rest_unread() -> None:
    seen: list[int] = []

    async def failing(ctx: RunContext[Any], stream: AsyncIterable[AgentStreamEvent]) -> None:
        async for _ in stream:
            raise ValueError('handler broke')

    with pytest.raises(ValueError, match='handler broke'):
        await handle_to_the_end(failing, run_context(), tapped(part_starts(3), seen))
    assert seen == [0]
