"""Model activities are sent only the new messages, and the model still sees the whole conversation.

The reference sends the whole conversation to every model activity, so a run's history grows with the square of its
turns (ANCHOR defect 10). Ours sends a delta on an earlier model activity of the workflow; these tests compare what
the model saw with what the plain agent's model sees, and read what each activity was sent from the history.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from core_helpers import WORKFLOW_TIMEOUT
from pydantic_ai import Agent
from pydantic_ai.capabilities import ProcessHistory
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from durable_kernel import PYDANTIC_AI_2
from durable_temporal import TemporalAgent
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio

TURNS = 8
SEEN: dict[str, list[list[str]]] = {}
"""What each model saw, by agent name: one entry per request, the kinds and texts of its messages."""


def _describe(messages: list[ModelMessage]) -> list[str]:
    described: list[str] = []
    for message in messages:
        for part in message.parts:
            content = getattr(part, 'content', None) or getattr(part, 'tool_name', '')
            described.append(f'{part.part_kind}:{content}')
    return described


def conversation(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    SEEN.setdefault(_agent_of(messages), []).append(_describe(messages))
    # The turn is read from the newest tool result (`result {turn}: ...`): a history processor may drop the rest.
    returns = [part for message in messages for part in message.parts if isinstance(part, ToolReturnPart)]
    turn = int(str(returns[-1].content).split(':')[0].removeprefix('result ')) + 1 if returns else 0
    if turn < TURNS - 1:
        return ModelResponse(parts=[ToolCallPart('lookup', {'turn': turn}, f'call-{turn}')])
    return ModelResponse(parts=[TextPart(f'done after {turn} turns')])


def _agent_of(messages: list[ModelMessage]) -> str:
    first = messages[0]
    assert isinstance(first, ModelRequest)
    return str(first.parts[-1].content).split(':', 1)[0]


def keep_recent(messages: list[ModelMessage]) -> list[ModelMessage]:
    """A history processor that drops all but the first request and the 3 newest messages."""
    if len(messages) <= 4:
        return messages
    return [messages[0], *messages[-3:]]


def _agent(name: str, **kwargs: Any) -> Agent[None, str]:
    agent = Agent(FunctionModel(conversation), name=name, **kwargs)

    @agent.tool_plain
    def lookup(turn: int) -> str:
        return f'result {turn}: ' + 'x' * 500

    return agent


long_agent = TemporalAgent(_agent('long'))
trimmed_agent = TemporalAgent(_agent('trimmed', capabilities=[ProcessHistory(keep_recent)]))


@workflow.defn
class LongConversationWorkflow:
    @workflow.run
    async def run(self, agent_name: str) -> list[str]:
        agent = long_agent if agent_name == 'long' else trimmed_agent
        first = await agent.run(f'{agent_name}: start')
        # A second run continuing the first: its first request builds on the first run's last one.
        second = await agent.run(f'{agent_name}: again', message_history=first.all_messages())
        return [first.output, second.output]


async def _model_inputs(client: Client, handle: WorkflowHandle[Any, Any]) -> list[dict[str, Any]]:
    """The first argument of every model activity, as recorded (JSON)."""
    inputs: list[dict[str, Any]] = []
    async for event in handle.fetch_history_events():
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        attributes = event.activity_task_scheduled_event_attributes
        if attributes.activity_type.name.endswith('__model_request'):
            inputs.append(json.loads(attributes.input.payloads[0].data))
    return inputs


async def _run_both(
    client: Client, task_queue: str, name: str, plain: Agent[None, str]
) -> tuple[list[dict[str, Any]], list[list[str]]]:
    SEEN.clear()
    async with agent_worker(
        client, workflows=[LongConversationWorkflow], agents=[long_agent, trimmed_agent], task_queue=task_queue
    ):
        handle = await client.start_workflow(
            LongConversationWorkflow.run,
            name,
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        outputs = await handle.result()
    durable_seen = SEEN.pop(name)

    first = await plain.run(f'{name}: start')
    second = await plain.run(f'{name}: again', message_history=first.all_messages())
    assert outputs == [first.output, second.output]
    # The model saw exactly what the plain agent's model sees, request by request.
    assert durable_seen == SEEN.pop(name)
    return await _model_inputs(client, handle), durable_seen


async def test_model_activities_get_new_messages_and_the_model_the_whole_conversation(
    client: Client, task_queue: str
) -> None:
    inputs, _ = await _run_both(client, task_queue, 'long', _agent('long'))

    # The second run answers at once: the conversation it continues already has all its turns.
    assert len(inputs) == TURNS + 1
    assert [params['history_index'] for params in inputs] == list(range(TURNS + 1))
    # The first request is sent whole; every later one builds on the one before it and adds the new request (the
    # tool result, or the second run's prompt).
    assert inputs[0]['history_base'] is None
    assert len(inputs[0]['messages']) == 1
    for index, params in enumerate(inputs[1:], start=1):
        assert params['history_base'] == index - 1
        assert len(params['messages']) == 1, index
    # Nothing is sent twice: the recorded inputs stay small however long the conversation gets.
    sizes = [len(json.dumps(params['messages'])) for params in inputs]
    assert max(sizes) < 3 * min(sizes[1:])


async def test_a_history_processor_that_rewrites_the_history_only_shortens_what_is_reused(
    client: Client, task_queue: str
) -> None:
    inputs, seen = await _run_both(
        client, task_queue, 'trimmed', _agent('trimmed', capabilities=[ProcessHistory(keep_recent)])
    )

    # The processor's history no longer starts like the previous request's beyond its first request, and the model
    # still got exactly that history (checked by `_run_both`). pydantic-ai 1.107 merges the first request with the
    # tool result that now follows it, so nothing is reused; 2.x keeps it apart, so at most it is reused, from the
    # request before.
    assert [params['history_keep'] for params in inputs[:2]] == [0, 2]
    keeps = [params['history_keep'] for params in inputs[2:]]
    if PYDANTIC_AI_2:
        assert set(keeps) == {0, 1}
        assert all(
            params['history_base'] == params['history_index'] - 1 for params in inputs[2:] if params['history_keep']
        )
    else:
        assert set(keeps) == {0}
    assert all(params['history_base'] is None for params in inputs[2:] if not params['history_keep'])
    sent_parts = [sum(len(message['parts']) for message in params['messages']) for params in inputs[2:]]
    # A reused first request is a single part, the user prompt.
    assert sent_parts == [len(parts) - keep for parts, keep in zip(seen[2:], keeps, strict=True)]


@workflow.defn
class UnhashableWorkflow:
    """A workflow class that defines `__eq__` (so instances are unhashable) and cannot be weakly referenced."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return self is other

    @workflow.run
    async def run(self) -> str:
        first = await long_agent.run('long: start')
        return (await long_agent.run('long: again', message_history=first.all_messages())).output


async def test_workflow_classes_without_hash_or_weakref_get_deltas_too(client: Client, task_queue: str) -> None:
    SEEN.clear()
    async with agent_worker(client, workflows=[UnhashableWorkflow], agents=[long_agent], task_queue=task_queue):
        handle = await client.start_workflow(
            UnhashableWorkflow.run, id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
        )
        assert await handle.result() == f'done after {TURNS - 1} turns'
    inputs = await _model_inputs(client, handle)
    assert [params['history_index'] for params in inputs] == list(range(TURNS + 1))
    assert all(len(params['messages']) == 1 for params in inputs)
