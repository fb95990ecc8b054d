"""Parallel tool calls in a workflow: scheduled in call order, their events reach the handler in call order."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, AsyncIterator

import anyio
import pytest
from core_helpers import WORKFLOW_TIMEOUT, scheduled_activities
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
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Replayer

from durable_temporal import PydanticAIPlugin, TemporalAgent
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio

FINISHED: list[str] = []
RESULT_EVENTS: list[str] = []


def two_calls_then_text(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    if len(messages) == 1:
        return ModelResponse(parts=[ToolCallPart('slow', {}, 'c1'), ToolCallPart('fast', {}, 'c2')])
    return ModelResponse(parts=[TextPart('done')])


async def two_calls_then_text_streamed(
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


parallel_agent = Agent(
    FunctionModel(two_calls_then_text, stream_function=two_calls_then_text_streamed), name='parallel_order'
)


@parallel_agent.tool_plain
async def slow() -> str:
    """Called first, finishes last."""
    await anyio.sleep(0.5)
    FINISHED.append('slow')
    return 'slow'


@parallel_agent.tool_plain
async def fast() -> str:
    """Called second, finishes first."""
    FINISHED.append('fast')
    return 'fast'


async def record_results(ctx: RunContext[None], stream: AsyncIterable[AgentStreamEvent]) -> None:
    async for event in stream:
        if isinstance(event, FunctionToolResultEvent):
            RESULT_EVENTS.append(event.tool_call_id)


temporal_parallel_agent = TemporalAgent(parallel_agent, event_stream_handler=record_results)


@workflow.defn
class ParallelToolsWorkflow:
    @workflow.run
    async def run(self, prompt: str) -> str:
        result = await temporal_parallel_agent.run(prompt)
        return result.output


async def test_parallel_tool_events_follow_call_order_and_replay(client: Client, task_queue: str) -> None:
    FINISHED.clear()
    RESULT_EVENTS.clear()
    async with agent_worker(
        client, workflows=[ParallelToolsWorkflow], agents=[temporal_parallel_agent], task_queue=task_queue
    ):
        handle = await client.start_workflow(
            ParallelToolsWorkflow.run,
            'go',
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        assert await handle.result() == 'done'

    assert FINISHED == ['fast', 'slow']
    assert RESULT_EVENTS == ['c1', 'c2']
    stream_summary = 'request model: function:function:two_calls_then_text:two_calls_then_text_streamed (stream)'
    scheduled = [
        (a.name.removeprefix('agent__parallel_order__'), a.summary) for a in await scheduled_activities(client, handle)
    ]
    # The tool-call events of the response share one activity, which runs while the tools do; the result events
    # share another once both tools have finished: 2 activities for 4 events (the reference spends 4, one each).
    assert scheduled == [
        ('model_request_stream', stream_summary),
        ('event_stream_handler', 'handle events: function_tool_call, function_tool_call'),
        ('toolset__<agent>__call_tool', 'call tool: <agent>:slow'),
        ('toolset__<agent>__call_tool', 'call tool: <agent>:fast'),
        ('event_stream_handler', 'handle events: function_tool_result, function_tool_result'),
        ('model_request_stream', stream_summary),
    ]

    history = await handle.fetch_history()
    markers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]
    # The patch markers of ordered tool events and of event batches.
    assert len(markers) == 2
    replayer = Replayer(workflows=[ParallelToolsWorkflow], plugins=[PydanticAIPlugin()])
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None
