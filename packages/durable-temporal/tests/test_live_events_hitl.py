"""Live events with human approval: the consumer sees the pending approval, then follows the resumed run.

The workflow hosts one `AgentEventStream`, runs the agent (which ends with `DeferredToolRequests`), waits for an
approval signal, and runs the agent again with `deferred_tool_results`: both runs publish to the same topic of the
same Workflow Stream, so a consumer that read the first run's terminal event continues at `offset + 1`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, cast

import pytest
from core_helpers import WORKFLOW_TIMEOUT
from pydantic_ai import Agent, DeferredToolRequests, DeferredToolResults, Tool
from pydantic_ai.messages import (
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    PartDeltaEvent,
    TextPart,
    TextPartDelta,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.run import AgentRunResultEvent
from temporalio import workflow
from temporalio.client import Client

from durable_temporal import (
    AgentEventStream,
    AgentPlugin,
    DurableAgentRunEvents,
    TemporalAgent,
    TemporalDurability,
    WorkflowStreamTopic,
)
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio

pytest.importorskip('temporalio.contrib.workflow_streams', reason='temporalio < 1.27.0 has no Workflow Streams')

TOPIC = WorkflowStreamTopic('hitl-events', batch_interval=timedelta(milliseconds=100))
Output = str | DeferredToolRequests


def refund(order_id: str) -> str:
    """Refund an order (needs a human's approval)."""
    return f'refunded {order_id}'


def _returned(messages: list[ModelMessage]) -> bool:
    return any(isinstance(p, ToolReturnPart) for m in messages if isinstance(m, ModelRequest) for p in m.parts)


async def stream_model(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
    if not _returned(messages):
        yield {0: DeltaToolCall(name='refund', json_args='{"order_id": "A-17"}', tool_call_id='r1')}
        return
    for chunk in ['Refund ', 'done: ', 'refunded A-17']:
        yield chunk


def plain_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart('unused outside a workflow')])


def _agent(name: str, capabilities: list[Any]) -> Agent[None, Output]:
    return Agent(
        FunctionModel(plain_model, stream_function=stream_model),
        name=name,
        output_type=[str, DeferredToolRequests],
        tools=[Tool(refund, requires_approval=True)],
        capabilities=capabilities,
    )


AGENTS: dict[str, Any] = {
    'cap': _agent('hitl_cap', [TemporalDurability(event_stream_topic=TOPIC)]),
    'wrap': TemporalAgent(_agent('hitl_wrap', []), event_stream_topic=TOPIC),
}


@workflow.defn
class ApprovalWorkflow:
    """Runs the agent, waits for the `decide` signal on its pending calls, runs it again with the decision."""

    @workflow.init
    def __init__(self, form: str, prompt: str) -> None:
        self.events = AgentEventStream(drain_timeout=timedelta(seconds=20))
        self.approved: bool | None = None

    @workflow.signal
    def decide(self, approved: bool) -> None:
        self.approved = approved

    @workflow.run
    async def run(self, form: str, prompt: str) -> str:
        agent = AGENTS[form]
        async with self.events:
            result = await agent.run(prompt)
            while isinstance(result.output, DeferredToolRequests):
                await workflow.wait_condition(lambda: self.approved is not None)
                approved = bool(self.approved)
                self.approved = None
                results = DeferredToolResults(approvals={c.tool_call_id: approved for c in result.output.approvals})
                result = await agent.run(message_history=result.all_messages(), deferred_tool_results=results)
        return result.output


def _consumer(form: str, client: Client, handle: Any, from_offset: int = 0) -> DurableAgentRunEvents[Output]:
    agent = AGENTS[form]
    if isinstance(agent, TemporalAgent):
        return cast('TemporalAgent[None, Output]', agent).stream_agent_events(client, handle, from_offset=from_offset)
    return TemporalDurability.from_agent(agent).stream_agent_events(
        client, handle, output_type=cast('type[Output]', Output), from_offset=from_offset
    )


async def _read(events: DurableAgentRunEvents[Output]) -> list[tuple[int, Any]]:
    read: list[tuple[int, Any]] = []
    async with events:
        async for event in events:
            read.append((events.offset, event))
    return read


@pytest.mark.parametrize('form', ['cap', 'wrap'])
async def test_hitl_a_pending_approval_is_visible_and_the_resumed_run_streams_on(
    client: Client, task_queue: str, form: str
):
    async with agent_worker(
        client,
        workflows=[ApprovalWorkflow],
        plugins=[AgentPlugin(agent) for agent in AGENTS.values()],
        task_queue=task_queue,
    ):
        handle = await client.start_workflow(
            ApprovalWorkflow.run,
            args=[form, 'Please refund A-17'],
            id=f'hitl-{uuid.uuid4()}',
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        # The first run: its events end with a terminal event whose output names the pending approval.
        first = await _read(_consumer(form, client, handle))
        terminal = first[-1][1]
        assert isinstance(terminal, AgentRunResultEvent)
        pending = cast('AgentRunResultEvent[Output]', terminal).result.output
        assert isinstance(pending, DeferredToolRequests)
        assert [(c.tool_name, c.tool_call_id, c.args_as_dict()) for c in pending.approvals] == [
            ('refund', 'r1', {'order_id': 'A-17'})
        ]
        assert not any(isinstance(e, FunctionToolResultEvent) for _, e in first)
        desc = await handle.describe()
        assert desc.status is not None
        assert desc.status.name == 'RUNNING'

        await handle.signal(ApprovalWorkflow.decide, True)
        # The resumed run, from right after the first run's terminal event.
        second = await _read(_consumer(form, client, handle, from_offset=first[-1][0] + 1))
        output = await handle.result()

    assert output == 'Refund done: refunded A-17'
    offsets = [o for o, _ in first + second]
    assert offsets == sorted(offsets)
    assert len(set(offsets)) == len(offsets)
    events = [e for _, e in second]
    kinds = [e.event_kind for e in events]
    # The approved call runs (its call and result events), then the model's final text, then the final result.
    assert kinds.count('function_tool_call') == kinds.count('function_tool_result') == 1
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
    assert 'Refund ' + text == output
    assert isinstance(events[-1], AgentRunResultEvent)
    assert kinds.count('agent_run_result') == 1
    assert cast('AgentRunResultEvent[Output]', events[-1]).result.output == output
