"""Parallel tool calls in a flow: they run concurrently, and their events come in call order, not finish order."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

import anyio
import pytest
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import (
    AgentStreamEvent,
    FunctionToolResultEvent,
    ModelMessage,
    ModelResponse,
    TextPart,
    ToolCallPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

from durable_prefect import PrefectAgent

from ._helpers import flow_runs_named, task_runs_of

pytestmark = [pytest.mark.anyio]


def _two_calls_then_text(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    if len(messages) == 1:
        return ModelResponse(parts=[ToolCallPart('slow', {}, 'c1'), ToolCallPart('fast', {}, 'c2')])
    return ModelResponse(parts=[TextPart('done')])


async def _two_calls_then_text_streamed(
    messages: list[ModelMessage], info: AgentInfo
) -> AsyncIterator[str | DeltaToolCalls]:
    # With an event stream handler the model requests are streamed.
    if len(messages) == 1:
        yield {
            0: DeltaToolCall(name='slow', json_args='{}', tool_call_id='c1'),
            1: DeltaToolCall(name='fast', json_args='{}', tool_call_id='c2'),
        }
    else:
        yield 'done'


@pytest.mark.usefixtures('prefect_server')
async def test_parallel_tool_events_follow_call_order() -> None:
    model = FunctionModel(_two_calls_then_text, stream_function=_two_calls_then_text_streamed)
    agent = Agent(model, name='parallel-order')
    finished: list[str] = []
    fast_started = anyio.Event()

    @agent.tool_plain
    async def slow() -> str:
        # Only a call running concurrently with `fast` gets past this (the guard fails the test instead of hanging).
        with anyio.fail_after(30):
            await fast_started.wait()
        await anyio.sleep(0.3)
        finished.append('slow')
        return 'slow'

    @agent.tool_plain
    async def fast() -> str:
        fast_started.set()
        finished.append('fast')
        return 'fast'

    result_events: list[str] = []

    async def handler(ctx: RunContext[None], stream: AsyncIterable[AgentStreamEvent]) -> None:
        async for event in stream:
            if isinstance(event, FunctionToolResultEvent):
                result_events.append(event.tool_call_id)

    result = await PrefectAgent(agent, event_stream_handler=handler).run('go')

    assert result.output == 'done'
    assert finished == ['fast', 'slow']
    assert result_events == ['c1', 'c2']


@pytest.mark.usefixtures('prefect_server')
async def test_events_yielded_together_are_handled_in_one_task() -> None:
    model = FunctionModel(_two_calls_then_text, stream_function=_two_calls_then_text_streamed)
    agent = Agent(model, name='event-batches')

    @agent.tool_plain
    async def slow() -> str:
        return 'slow'

    @agent.tool_plain
    async def fast() -> str:
        return 'fast'

    seen: list[str] = []

    async def handler(ctx: RunContext[None], stream: AsyncIterable[AgentStreamEvent]) -> None:
        async for event in stream:
            seen.append(f'{event.event_kind}:{getattr(event, "tool_call_id", "")}')

    await PrefectAgent(agent, event_stream_handler=handler).run('go')

    tool_events = [name for name in seen if name.startswith('function_tool')]
    assert tool_events == [
        'function_tool_call:c1',
        'function_tool_call:c2',
        'function_tool_result:c1',
        'function_tool_result:c2',
    ]
    [flow_run] = await flow_runs_named('event-batches Run')
    names = [run.name.rsplit('-', 1)[0] for run in await task_runs_of([flow_run.id], expected=6)]
    # 2 streamed model requests, 2 tool calls, and the 4 tool events in 2 tasks: the calls', then the results'.
    assert names.count('Handle Stream Event') == 2
    assert names.count('Model Request (Streaming): function:_two_calls_then_text:_two_calls_then_text_streamed') == 2
