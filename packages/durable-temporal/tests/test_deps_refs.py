"""Large deps go to a workflow's activities once; each activity still gets its own copy of them.

The reference sends `deps` with every activity: 200 KB of deps and 20 parallel tool calls made one workflow-task
completion over gRPC's 4 MB limit (ANCHOR defect 10). Ours sends deps over 2 KB with the first activity only.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, AsyncIterator

import pytest
from core_helpers import WORKFLOW_TIMEOUT
from pydantic import BaseModel
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import AgentStreamEvent, ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from temporalio import workflow
from temporalio.client import Client

from durable_temporal import TemporalAgent
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio

PARALLEL_CALLS = 20
HANDLED: list[int] = []


class Tenant(BaseModel):
    """Deps with a large document, and a list that the tools change."""

    name: str
    document: str
    notes: list[str] = []


def fan_out(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    returns = [part for message in messages for part in message.parts if isinstance(part, ToolReturnPart)]
    if not returns:
        return ModelResponse(parts=[ToolCallPart('read', {'index': i}, f'c{i}') for i in range(PARALLEL_CALLS)])
    return ModelResponse(parts=[TextPart(' '.join(str(part.content) for part in returns))])


async def fan_out_streamed(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
    # With an event stream handler the requests are streamed.
    response = fan_out(messages, info)
    if isinstance(response.parts[0], TextPart):
        yield response.parts[0].content
        return
    yield {
        i: DeltaToolCall(name=part.tool_name, json_args=part.args_as_json_str(), tool_call_id=part.tool_call_id)
        for i, part in enumerate(response.tool_calls)
    }


async def count_deps(ctx: RunContext[Tenant], stream: AsyncIterable[AgentStreamEvent]) -> None:
    async for _ in stream:
        HANDLED.append(len(ctx.deps.document))


deps_agent = Agent(FunctionModel(fan_out, stream_function=fan_out_streamed), name='big_deps', deps_type=Tenant)


@deps_agent.tool
async def read(ctx: RunContext[Tenant], index: int) -> str:
    # Each call changes its deps: no other call may see the change (each activity decodes its own copy).
    ctx.deps.notes.append(f'read {index}')
    return f'{ctx.deps.name}:{len(ctx.deps.document)}:{len(ctx.deps.notes)}'


temporal_deps_agent = TemporalAgent(deps_agent, event_stream_handler=count_deps)


@workflow.defn
class BigDepsWorkflow:
    @workflow.run
    async def run(self, size: int) -> str:
        tenant = Tenant(name='acme', document='x' * size)
        return (await temporal_deps_agent.run('read everything', deps=tenant)).output


async def _deps_sizes(client: Client, size: int) -> tuple[str, list[int]]:
    """Run the workflow with a document of `size` characters: its output and the deps bytes of every activity."""
    task_queue = f'deps-{uuid.uuid4()}'
    async with agent_worker(client, workflows=[BigDepsWorkflow], agents=[temporal_deps_agent], task_queue=task_queue):
        handle = await client.start_workflow(
            BigDepsWorkflow.run, size, id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
        )
        output = await handle.result()
    history = await handle.fetch_history()
    sizes = [
        len(event.activity_task_scheduled_event_attributes.input.payloads[1].data)
        for event in history.events
        if event.HasField('activity_task_scheduled_event_attributes')
    ]
    return output, sizes


async def test_large_deps_are_sent_once_and_every_activity_sees_its_own_copy(client: Client) -> None:
    HANDLED.clear()
    output, sizes = await _deps_sizes(client, 200_000)

    assert output == ' '.join(['acme:200000:1'] * PARALLEL_CALLS)
    # The handler activities (tool-call and result events) see the deps too.
    assert HANDLED
    assert set(HANDLED) == {200_000}
    # 2 model requests, 20 tool calls and the handler's batches: only the first carries the 200 KB.
    assert len(sizes) >= 2 + PARALLEL_CALLS
    assert sizes[0] > 200_000
    assert all(size < 100 for size in sizes[1:])


async def test_small_deps_travel_with_every_activity(client: Client) -> None:
    output, sizes = await _deps_sizes(client, 100)

    assert output == ' '.join(['acme:100:1'] * PARALLEL_CALLS)
    assert all(100 < size < 2048 for size in sizes)
