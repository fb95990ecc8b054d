"""Live events with human approval on Prefect: the consumer sees the pending approval, then follows the resumed run.

The documented shape (docs/prefect.md, "Human in the loop", one flow that pauses): the user's flow runs the agent,
which ends with `DeferredToolRequests`, pauses with `pause_flow_run(wait_for_input=...)`, and runs the agent again with
`deferred_tool_results`. Both runs publish to the user's flow run (the wrapper's `run` is a subflow there and
publishes to its caller's run), one channel whose offsets continue: a consumer that read the first run's terminal
event continues at `offset + 1`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, Literal, cast
from uuid import UUID

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.flow_runs import pause_flow_run, resume_flow_run
from pydantic import BaseModel
from pydantic_ai import Agent, DeferredToolRequests, DeferredToolResults, Tool
from pydantic_ai.messages import (
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.run import AgentRunResultEvent

from durable_prefect import DurableAgentRunEvents, PrefectAgent, PrefectDurability

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures('prefect_server')]

Form = Literal['wrapper', 'capability']
TOPIC = 'hitl-events'
POLL = timedelta(milliseconds=50)
TIMEOUT = 120
OUTPUT = 'Refund done: refunded A-17'
Output = str | DeferredToolRequests


class Decision(BaseModel):
    """What the paused flow run waits for."""

    approved: bool


def refund(order_id: str) -> str:
    """Refund an order (needs a human's approval)."""
    return f'refunded {order_id}'


async def stream_model(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
    if not any(isinstance(p, ToolReturnPart) for m in messages if isinstance(m, ModelRequest) for p in m.parts):
        yield {0: DeltaToolCall(name='refund', json_args='{"order_id": "A-17"}', tool_call_id='r1')}
        return
    for chunk in ['Refund ', 'done: ', 'refunded A-17']:
        yield chunk


def plain_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:  # pragma: no cover - streamed
    return ModelResponse(parts=[TextPart('unused')])


def _agent(name: str, capabilities: list[Any]) -> Agent[None, Output]:
    return Agent(
        FunctionModel(plain_model, stream_function=stream_model),
        name=name,
        output_type=[str, DeferredToolRequests],
        tools=[Tool(refund, requires_approval=True)],
        capabilities=capabilities,
    )


async def _read(events: DurableAgentRunEvents[Any]) -> list[tuple[int, Any]]:
    read: list[tuple[int, Any]] = []
    async with events:
        async for event in events:
            read.append((events.offset, event))
    return read


async def _wait_until_paused(flow_run_id: UUID) -> None:
    async with get_client() as client:
        for _ in range(TIMEOUT * 10):
            state = (await client.read_flow_run(flow_run_id)).state
            if state is not None and state.is_paused():
                return
            await asyncio.sleep(0.1)
    raise AssertionError('the flow run did not pause')


@pytest.mark.parametrize('form', ['capability', 'wrapper'])
async def test_hitl_the_consumer_sees_the_pending_approval_and_follows_the_resumed_run(form: Form) -> None:
    name = f'hitl-{form}'
    if form == 'capability':
        capability = PrefectDurability[None](event_stream_topic=TOPIC)
        agent: Any = _agent(name, [capability])
        source: Any = capability
    else:
        agent = source = PrefectAgent(_agent(name, []), event_stream_topic=TOPIC)
    ids: asyncio.Queue[UUID] = asyncio.Queue()

    @flow(name=f'{name} approval flow')
    async def approval_flow(prompt: str) -> str:
        context = FlowRunContext.get()
        assert context is not None
        assert context.flow_run is not None
        ids.put_nowait(context.flow_run.id)
        result = await agent.run(prompt)
        while isinstance(result.output, DeferredToolRequests):
            # `sync_compatible`: a coroutine in async code, which its annotations do not say.
            paused: Any = pause_flow_run(wait_for_input=Decision, timeout=TIMEOUT, poll_interval=1)
            decision = cast(Decision, await paused)
            results = DeferredToolResults(
                approvals={c.tool_call_id: decision.approved for c in result.output.approvals}
            )
            result = await agent.run(message_history=result.all_messages(), deferred_tool_results=results)
        return result.output

    task = asyncio.ensure_future(approval_flow('Please refund A-17'))
    flow_run_id = await asyncio.wait_for(ids.get(), 60)

    def consume(from_offset: int = 0) -> DurableAgentRunEvents[Output]:
        return source.stream_agent_events(
            flow_run_id, output_type=Output, from_offset=from_offset, polling_interval=POLL
        )

    # The first run: its events end with a terminal event whose output names the pending approval.
    first = await _read(consume())
    terminal = first[-1][1]
    assert isinstance(terminal, AgentRunResultEvent)
    pending = cast('AgentRunResultEvent[Output]', terminal).result.output
    assert isinstance(pending, DeferredToolRequests)
    assert [(c.tool_name, c.tool_call_id, c.args_as_dict()) for c in pending.approvals] == [
        ('refund', 'r1', {'order_id': 'A-17'})
    ]
    assert not any(isinstance(e, FunctionToolResultEvent) for _, e in first)

    await _wait_until_paused(flow_run_id)
    resumed: Any = resume_flow_run(flow_run_id, run_input={'approved': True})
    await resumed
    # The resumed run, from right after the first run's terminal event.
    second = await _read(consume(from_offset=first[-1][0] + 1))
    assert await asyncio.wait_for(task, TIMEOUT) == OUTPUT

    offsets = [o for o, _ in first + second]
    # One channel, increasing offsets, nothing twice; the only offsets skipped are the empty ones left before each
    # model request's stream (where a retry marker would go).
    assert offsets == sorted(set(offsets))
    skipped = sorted(set(range(offsets[-1] + 1)) - set(offsets))
    starts = [offset for offset, e in first + second if isinstance(e, PartStartEvent) and e.index == 0]
    assert skipped == [offset - 1 for offset in starts]
    events = [e for _, e in second]
    kinds = [e.event_kind for e in events]
    assert kinds.count('function_tool_call') == 1
    assert kinds.count('function_tool_result') == 1
    call = events[kinds.index('function_tool_call')]
    result = events[kinds.index('function_tool_result')]
    assert isinstance(call, FunctionToolCallEvent)
    assert call.part.tool_call_id == 'r1'
    assert isinstance(result, FunctionToolResultEvent)
    assert result.tool_call_id == 'r1'
    assert 'refunded A-17' in repr(result)
    assert kinds.index('function_tool_result') < kinds.index('part_start')
    text = ''.join(
        e.delta.content_delta for e in events if isinstance(e, PartDeltaEvent) and isinstance(e.delta, TextPartDelta)
    )
    assert 'Refund ' + text == OUTPUT
    assert kinds.count('agent_run_result') == 1
    assert isinstance(events[-1], AgentRunResultEvent)
    assert cast('AgentRunResultEvent[Output]', events[-1]).result.output == OUTPUT
