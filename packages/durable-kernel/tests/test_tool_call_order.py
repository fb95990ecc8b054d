from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

import anyio
import pytest
from pydantic_ai import Agent, RunContext
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import (
    AgentStreamEvent,
    FunctionToolResultEvent,
    ModelMessage,
    ModelResponse,
    TextPart,
    ToolCallPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

from durable_kernel import (
    DEFAULT_PARALLEL_EXECUTION_MODE,
    DurableParallelExecutionMode,
    ordered_tool_call_events,
    require_durable_parallel_execution_mode,
)


@pytest.fixture
def anyio_backend() -> str:
    return 'asyncio'


def test_durable_modes_are_accepted_and_parallel_is_refused() -> None:
    assert DEFAULT_PARALLEL_EXECUTION_MODE == 'parallel_ordered_events'
    assert require_durable_parallel_execution_mode('sequential', engine='X') == 'sequential'
    assert require_durable_parallel_execution_mode('parallel_ordered_events', engine='X') == 'parallel_ordered_events'
    with pytest.raises(UserError, match=r"not supported by X: use 'parallel_ordered_events' or 'sequential'"):
        require_durable_parallel_execution_mode('parallel', engine='X')


def _two_calls_then_text(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    if len(messages) == 1:
        return ModelResponse(parts=[ToolCallPart('slow', {}, 'c1'), ToolCallPart('fast', {}, 'c2')])
    return ModelResponse(parts=[TextPart('done')])


async def _two_calls_then_text_streamed(
    messages: list[ModelMessage], info: AgentInfo
) -> AsyncIterator[str | DeltaToolCalls]:
    if len(messages) == 1:
        yield {
            0: DeltaToolCall(name='slow', json_args='{}', tool_call_id='c1'),
            1: DeltaToolCall(name='fast', json_args='{}', tool_call_id='c2'),
        }
    else:
        yield 'done'


async def _run(mode: DurableParallelExecutionMode | None) -> tuple[list[str], list[str]]:
    agent = Agent(FunctionModel(_two_calls_then_text, stream_function=_two_calls_then_text_streamed))
    finished: list[str] = []
    fast_done = anyio.Event()

    @agent.tool_plain
    async def slow() -> str:
        if mode != 'sequential':
            with anyio.fail_after(30):
                await fast_done.wait()  # only a call running concurrently with `fast` gets past this
            await anyio.sleep(0.2)  # `fast` is reported before this call finishes
        finished.append('slow')
        return 'slow'

    @agent.tool_plain
    async def fast() -> str:
        finished.append('fast')
        fast_done.set()
        return 'fast'

    results: list[str] = []

    async def handler(ctx: RunContext[None], stream: AsyncIterable[AgentStreamEvent]) -> None:
        async for event in stream:
            if isinstance(event, FunctionToolResultEvent):
                results.append(event.tool_call_id)

    if mode is None:
        await agent.run('go', event_stream_handler=handler)
    else:
        with ordered_tool_call_events(mode):
            await agent.run('go', event_stream_handler=handler)
    return finished, results


@pytest.mark.anyio
async def test_events_follow_call_order_in_the_durable_modes() -> None:
    # pydantic-ai's default reports results as tools finish; the durable modes report them in call order.
    assert await _run(None) == (['fast', 'slow'], ['c2', 'c1'])
    assert await _run('parallel_ordered_events') == (['fast', 'slow'], ['c1', 'c2'])
    assert await _run('sequential') == (['slow', 'fast'], ['c1', 'c2'])
