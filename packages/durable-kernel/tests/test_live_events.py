"""The engine-agnostic parts of live events: topics, the batcher a durable unit publishes through, the consumer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, Union, cast

import pytest
from pydantic_ai import DeferredToolRequests, ToolOutput
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import PartDeltaEvent, TextPartDelta, ToolCallPart
from pydantic_ai.run import AgentRunResult, AgentRunResultEvent

from durable_kernel import (
    DurableAgentRunEvents,
    EventBatcher,
    EventStreamTopic,
    LiveEventDecoder,
    UnitEvent,
    UnitRetryEvent,
    coerce_event_stream_topic,
    decodable_output_type,
    dump_live_result,
    topic_to_read,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return 'asyncio'


def test_a_topic_needs_a_name_and_a_positive_interval() -> None:
    assert coerce_event_stream_topic('events') == EventStreamTopic('events')
    assert coerce_event_stream_topic(None) is None
    with pytest.raises(UserError, match='needs a name'):
        EventStreamTopic('')
    with pytest.raises(UserError, match='greater than zero'):
        EventStreamTopic('events', batch_interval=timedelta(0))
    with pytest.raises(UserError, match='topic name or an `EventStreamTopic`'):
        coerce_event_stream_topic(3)  # type: ignore[arg-type]
    deltas_only = EventStreamTopic('events', events=lambda event: isinstance(event, PartDeltaEvent))
    assert deltas_only.selects(PartDeltaEvent(index=0, delta=TextPartDelta('a')))


async def test_a_long_stream_costs_one_send_per_interval_and_nothing_is_lost() -> None:
    batches: list[list[int]] = []

    async def send(batch: list[int]) -> None:
        await asyncio.sleep(0.005)  # a durable write takes time; items keep arriving meanwhile
        batches.append(batch)

    async with EventBatcher(send, timedelta(milliseconds=50)) as batcher:
        for item in range(200):
            batcher.add(item)
            await asyncio.sleep(0.001)
    assert [item for batch in batches for item in batch] == list(range(200))
    assert batcher.batches == len(batches)
    assert 2 <= len(batches) <= 20, len(batches)


async def test_what_was_buffered_when_the_unit_failed_is_still_sent() -> None:
    batches: list[list[str]] = []

    async def send(batch: list[str]) -> None:
        batches.append(batch)

    async def unit() -> None:
        async with EventBatcher(send, timedelta(seconds=10)) as batcher:
            batcher.add('partial')
            raise RuntimeError('model failed')

    with pytest.raises(RuntimeError, match='model failed'):
        await unit()
    assert batches == [['partial']]


async def test_a_failed_background_send_surfaces_when_the_unit_ends() -> None:
    async def send(batch: list[int]) -> None:
        raise ConnectionError('channel down')

    async def unit() -> None:
        async with EventBatcher(send, timedelta(milliseconds=1)) as batcher:
            batcher.add(1)
            await asyncio.sleep(0.05)

    with pytest.raises(ConnectionError, match='channel down'):
        await unit()


async def test_the_consumer_keeps_offsets_and_stops_at_the_terminal_event() -> None:
    delta = PartDeltaEvent(index=0, delta=TextPartDelta('hi'))
    result = AgentRunResult(output='done')
    acknowledged: list[Any] = []
    closed: list[bool] = []

    async def items() -> AsyncIterator[tuple[int, Any]]:
        yield 3, delta
        yield 4, AgentRunResultEvent(result)
        raise AssertionError('read past the terminal event')

    async def on_result(event: AgentRunResultEvent[Any]) -> None:
        acknowledged.append(event)

    async def close() -> None:
        closed.append(True)

    events: DurableAgentRunEvents[str] = DurableAgentRunEvents(items(), on_result=on_result, close=close)
    assert events.offset == -1
    seen = [event async for event in events]
    assert seen[0] == delta
    terminal = seen[1]
    assert isinstance(terminal, AgentRunResultEvent)
    assert cast('AgentRunResultEvent[str]', terminal).result.output == 'done'
    assert events.offset == 4
    assert events.result is not None
    assert events.result.output == 'done'
    assert len(acknowledged) == 1
    assert closed == [True]


async def test_a_unit_that_publishes_again_from_its_start_is_announced_as_a_retry() -> None:
    first = PartDeltaEvent(index=0, delta=TextPartDelta('Hel'))
    again = PartDeltaEvent(index=0, delta=TextPartDelta('Hello'))

    async def items() -> AsyncIterator[tuple[int, Any]]:
        yield 0, UnitEvent(unit='3', seq=0, event=first)
        yield 1, UnitEvent(unit='3', seq=0, event=again)  # the step ran again after its worker died
        yield 2, UnitEvent(unit='5', seq=0, event=first)  # another unit: not a retry
        yield 3, AgentRunResultEvent(AgentRunResult(output='done'))

    seen = [event async for event in DurableAgentRunEvents[str](items())]
    assert seen[:4] == [first, UnitRetryEvent(unit='model_request', attempt=2), again, first]
    assert isinstance(seen[4], AgentRunResultEvent)


def test_an_output_spec_is_decoded_as_its_types() -> None:
    # An agent whose tools may need approval has `output_type=[str, DeferredToolRequests]`: its consumer receives the
    # pending requests as `DeferredToolRequests`, not as JSON data.
    assert decodable_output_type(str) is str
    assert decodable_output_type([str, DeferredToolRequests]) == Union[str, DeferredToolRequests]  # noqa: UP007
    assert decodable_output_type([ToolOutput(int), str]) is Any
    pending = DeferredToolRequests(approvals=[ToolCallPart('refund', {'order_id': 'A-17'}, tool_call_id='r1')])
    data = dump_live_result(AgentRunResult(pending))
    assert LiveEventDecoder([str, DeferredToolRequests]).result(data).result.output == pending


async def test_a_consumer_resuming_inside_an_earlier_attempt_is_told_of_the_retry() -> None:
    """The engine passes the unit events before `from_offset`: the retry after it is announced, once."""
    first = PartDeltaEvent(index=0, delta=TextPartDelta('Hel'))
    more = PartDeltaEvent(index=0, delta=TextPartDelta('lo'))
    again = PartDeltaEvent(index=0, delta=TextPartDelta('Hello'))

    def items(from_offset: int) -> AsyncIterator[tuple[int, Any]]:
        async def all_items() -> AsyncIterator[tuple[int, Any]]:
            # Offsets as an engine gives them: the one before an attempt's first event is no event's own.
            for offset, item in (
                (1, UnitEvent(unit='3', seq=0, event=first)),
                (2, UnitEvent(unit='3', seq=1, event=more)),
                (4, UnitEvent(unit='3', seq=0, event=again)),  # the step ran again after its worker died
                (5, AgentRunResultEvent(AgentRunResult(output='done'))),
            ):
                if offset >= from_offset or isinstance(item, UnitEvent):
                    yield offset, item

        return all_items()

    # Resumed after the first event of the first attempt: the rest of it, the marker, the new attempt.
    resumed = DurableAgentRunEvents[str](items(2), from_offset=2)
    seen = [event async for event in resumed]
    assert seen[:3] == [more, UnitRetryEvent(unit='model_request', attempt=2), again]
    assert isinstance(seen[3], AgentRunResultEvent)

    # A consumer that stopped right after the marker resumes at its offset + 1: the new attempt's first event, and
    # no second marker.
    stopped = DurableAgentRunEvents[str](items(2), from_offset=2)
    assert [await anext(stopped), await anext(stopped)] == [more, UnitRetryEvent(unit='model_request', attempt=2)]
    after_marker = DurableAgentRunEvents[str](items(stopped.offset + 1), from_offset=stopped.offset + 1)
    seen = [event async for event in after_marker]
    assert seen[0] == again
    assert isinstance(seen[1], AgentRunResultEvent)


def test_the_topic_to_read_is_the_one_passed_else_the_configured_one() -> None:
    configured = EventStreamTopic('configured')
    assert topic_to_read('passed', configured, 'unused') == EventStreamTopic('passed')
    assert topic_to_read(None, configured, 'unused') is configured
    with pytest.raises(UserError, match='^how to make one$'):
        topic_to_read(None, None, 'how to make one')
