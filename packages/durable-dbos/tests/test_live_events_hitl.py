"""Live events with human approval on DBOS: the consumer sees the pending approval, then follows the resumed run.

The documented shape (docs/dbos.md, "Human in the loop"): the user's workflow runs the agent, which ends with
`DeferredToolRequests`, waits for the decision with `DBOS.recv_async`, and runs the agent again with
`deferred_tool_results`.

- Capability form: both runs publish to the user's workflow's stream under the same topic (the capability does not
  close it), so a consumer that read the first run's terminal event continues at `offset + 1`.
- Wrapper form: each `DBOSAgent.run` is a child workflow with its own stream, closed after its result: the consumer
  reads the first child's stream, then the second child's from its start.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any, cast

import pytest
from dbos import DBOS, SetWorkflowID
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

from durable_dbos import DBOSAgent, DBOSDurability, DurableAgentRunEvents

pytestmark = pytest.mark.anyio

TOPIC = 'hitl-events'
POLL = timedelta(milliseconds=20)
TIMEOUT = 120
OUTPUT = 'Refund done: refunded A-17'


def refund(order_id: str) -> str:
    """Refund an order (needs a human's approval)."""
    return f'refunded {order_id}'


def _model() -> FunctionModel:
    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
        if not any(isinstance(p, ToolReturnPart) for m in messages if isinstance(m, ModelRequest) for p in m.parts):
            yield {0: DeltaToolCall(name='refund', json_args='{"order_id": "A-17"}', tool_call_id='r1')}
            return
        for chunk in ['Refund ', 'done: ', 'refunded A-17']:
            yield chunk

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:  # pragma: no cover - streamed
        return ModelResponse(parts=[TextPart('unused')])

    return FunctionModel(answer, stream_function=stream)


def _agent(name: str, capabilities: list[Any]) -> Agent[None, str | DeferredToolRequests]:
    return Agent(
        _model(),
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


def _check_pending(first: list[tuple[int, Any]]) -> None:
    """The first run's events end with a terminal event whose output names the pending approval."""
    terminal = first[-1][1]
    assert isinstance(terminal, AgentRunResultEvent)
    pending = cast('AgentRunResultEvent[Any]', terminal).result.output
    assert isinstance(pending, DeferredToolRequests)
    assert [(c.tool_name, c.tool_call_id, c.args_as_dict()) for c in pending.approvals] == [
        ('refund', 'r1', {'order_id': 'A-17'})
    ]
    assert not any(isinstance(e, FunctionToolResultEvent) for _, e in first)


def _check_resumed(second: list[tuple[int, Any]]) -> None:
    """The resumed run: the approved call and its result, the model's final text, the final result, once each."""
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
    assert cast('AgentRunResultEvent[Any]', events[-1]).result.output == OUTPUT
    offsets = [o for o, _ in second]
    assert offsets == sorted(set(offsets))


async def _wait_for_workflow(workflow_id: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while await DBOS.get_workflow_status_async(workflow_id) is None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


async def test_hitl_capability_the_consumer_follows_the_resumed_run_at_offset_plus_one(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    capability = DBOSDurability[None](event_stream_topic=TOPIC)
    agent = _agent(agent_name, [capability])

    @DBOS.workflow(name=f'{agent_name}.approval_workflow')
    async def approval_workflow(prompt: str) -> str:
        result = await agent.run(prompt)
        while isinstance(result.output, DeferredToolRequests):
            approved = await DBOS.recv_async('decision', timeout_seconds=TIMEOUT)
            results = DeferredToolResults(approvals={c.tool_call_id: bool(approved) for c in result.output.approvals})
            result = await agent.run(message_history=result.all_messages(), deferred_tool_results=results)
        return result.output

    dbos_launch()
    # The capability bound to the agent knows its output type, so the pending requests arrive typed.
    bound = DBOSDurability.from_agent(agent)
    workflow_id = f'{agent_name}-wf'
    with SetWorkflowID(workflow_id):
        handle = await DBOS.start_workflow_async(approval_workflow, 'Please refund A-17')

    first = await _read(bound.stream_agent_events(workflow_id, polling_interval=POLL))
    _check_pending(first)
    status = await DBOS.get_workflow_status_async(workflow_id)
    assert status is not None
    assert status.status == 'PENDING'  # waiting for the decision

    await DBOS.send_async(workflow_id, True, topic='decision')
    second = await _read(bound.stream_agent_events(workflow_id, from_offset=first[-1][0] + 1, polling_interval=POLL))
    assert await handle.get_result() == OUTPUT
    assert second[0][0] > first[-1][0]
    _check_resumed(second)


async def test_hitl_wrapper_the_consumer_follows_the_second_run_workflow(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    durable = DBOSAgent(_agent(agent_name, []), event_stream_topic=TOPIC)

    @DBOS.workflow(name=f'{agent_name}.approval_workflow')
    async def approval_workflow(prompt: str) -> str:
        # Each `run` is a child workflow: the ids the consumer follows are set here, from the parent's.
        parent = DBOS.workflow_id
        with SetWorkflowID(f'{parent}-run-1'):
            result = await durable.run(prompt)
        turn = 1
        while isinstance(result.output, DeferredToolRequests):
            approved = await DBOS.recv_async('decision', timeout_seconds=TIMEOUT)
            results = DeferredToolResults(approvals={c.tool_call_id: bool(approved) for c in result.output.approvals})
            turn += 1
            with SetWorkflowID(f'{parent}-run-{turn}'):
                result = await durable.run(message_history=result.all_messages(), deferred_tool_results=results)
        return result.output

    dbos_launch()
    workflow_id = f'{agent_name}-wf'
    with SetWorkflowID(workflow_id):
        handle = await DBOS.start_workflow_async(approval_workflow, 'Please refund A-17')

    await _wait_for_workflow(f'{workflow_id}-run-1')
    first = await _read(durable.stream_agent_events(f'{workflow_id}-run-1', polling_interval=POLL))
    _check_pending(first)

    await DBOS.send_async(workflow_id, True, topic='decision')
    await _wait_for_workflow(f'{workflow_id}-run-2')
    second = await _read(durable.stream_agent_events(f'{workflow_id}-run-2', polling_interval=POLL))
    assert await handle.get_result() == OUTPUT
    _check_resumed(second)
