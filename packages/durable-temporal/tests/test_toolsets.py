"""Tool control flow across the activity boundary, dynamic toolsets, and custom toolset wrapping."""

from __future__ import annotations

import uuid
from typing import Any, cast

import pytest
from core_helpers import WORKFLOW_TIMEOUT, activity_names, scheduled_activities
from pydantic_ai import Agent, FunctionToolset, RunContext
from pydantic_ai import exceptions as pydantic_ai_exceptions
from pydantic_ai.exceptions import ApprovalRequired, CallDeferred, ModelRetry, UserError
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.tools import DeferredToolApprovalResult, DeferredToolRequests, DeferredToolResults
from pydantic_ai.toolsets import AbstractToolset
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Replayer

from durable_temporal import AgentPlugin, PydanticAIPlugin, TemporalAgent, TemporalDurability, temporalize_toolset
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio

CALLS: list[str] = []
SEEN_INSTRUCTIONS: list[str | None] = []


def _returned(messages: list[ModelMessage]) -> dict[str, Any]:
    return {
        part.tool_name: part.content
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        # Not the attempts a `ModelRetry` turned down (2.x records them as `ToolReturnPart`s, 1.107 as retry prompts).
        if isinstance(part, ToolReturnPart) and part.outcome == 'success'
    }


def control_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    returned = _returned(messages)
    if 'flaky' in returned:
        return ModelResponse(parts=[TextPart(f'recovered: {returned["flaky"]}')])
    if 'needs_approval' in returned and 'deferred_call' in returned:
        return ModelResponse(parts=[TextPart(f'{returned["needs_approval"]} / {returned["deferred_call"]}')])
    if messages and isinstance(messages[-1], ModelRequest) and 'retry' in str(messages[0]):
        return ModelResponse(parts=[ToolCallPart('flaky', {})])
    return ModelResponse(parts=[ToolCallPart('needs_approval', {}), ToolCallPart('deferred_call', {})])


control_agent = Agent(FunctionModel(control_model), name='control')


@control_agent.tool_plain
async def flaky() -> str:
    CALLS.append('flaky')
    if CALLS.count('flaky') == 1:
        raise ModelRetry('try again')
    return 'ok'


@control_agent.tool
async def needs_approval(ctx: RunContext[None]) -> str:
    CALLS.append('needs_approval')
    if not ctx.tool_call_approved:
        raise ApprovalRequired(metadata={'why': 'costly'})
    return 'approved and done'


@control_agent.tool_plain
async def deferred_call() -> str:
    CALLS.append('deferred_call')
    raise CallDeferred(metadata={'job': 7})


temporal_control_agent = TemporalAgent(control_agent)


@workflow.defn
class ControlWorkflow:
    @workflow.run
    async def run(self, case: str) -> str:
        if case == 'retry':
            return (await temporal_control_agent.run('retry please')).output
        first = await temporal_control_agent.run('defer', output_type=[str, DeferredToolRequests])
        requests = first.output
        assert isinstance(requests, DeferredToolRequests)
        approvals: dict[str, bool | DeferredToolApprovalResult] = {
            call.tool_call_id: True for call in requests.approvals
        }
        calls = {call.tool_call_id: 'finished elsewhere' for call in requests.calls}
        second = await temporal_control_agent.run(
            message_history=first.all_messages(),
            deferred_tool_results=DeferredToolResults(approvals=approvals, calls=calls),
            output_type=[str, DeferredToolRequests],
        )
        metadata = {**requests.metadata}
        return f'{len(requests.approvals)} approval(s), {len(requests.calls)} call(s), {metadata} -> {second.output}'


async def _attempts(handle: Any) -> list[int]:
    history = await handle.fetch_history()
    return [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]


async def test_model_retry_from_an_activity_is_a_retry_prompt_not_an_activity_failure(
    client: Client, task_queue: str
) -> None:
    CALLS.clear()
    async with agent_worker(
        client, workflows=[ControlWorkflow], agents=[temporal_control_agent], task_queue=task_queue
    ):
        handle = await client.start_workflow(
            ControlWorkflow.run,
            'retry',
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        assert await handle.result() == 'recovered: ok'
    assert CALLS == ['flaky', 'flaky']
    assert await _attempts(handle) == [1, 1, 1, 1, 1]
    assert await activity_names(client, handle) == [
        'agent__control__model_request',
        'agent__control__toolset__<agent>__call_tool',
        'agent__control__model_request',
        'agent__control__toolset__<agent>__call_tool',
        'agent__control__model_request',
    ]


async def test_approval_and_deferral_from_activities_become_deferred_tool_requests(
    client: Client, task_queue: str
) -> None:
    CALLS.clear()
    async with agent_worker(
        client, workflows=[ControlWorkflow], agents=[temporal_control_agent], task_queue=task_queue
    ):
        handle = await client.start_workflow(
            ControlWorkflow.run,
            'defer',
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        output = await handle.result()
    assert output.startswith('1 approval(s), 1 call(s)')
    assert "{'why': 'costly'}" in output
    assert "{'job': 7}" in output
    assert output.endswith('-> approved and done / finished elsewhere')
    assert sorted(CALLS) == ['deferred_call', 'needs_approval', 'needs_approval']
    assert set(await _attempts(handle)) == {1}


# --- dynamic toolsets -------------------------------------------------------------------------------------------


def dynamic_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    SEEN_INSTRUCTIONS.append(info.instructions)
    returned = _returned(messages)
    if 'lookup' in returned:
        return ModelResponse(parts=[TextPart(f'found {returned["lookup"]}')])
    return ModelResponse(parts=[ToolCallPart('lookup', {'key': 'k1'})])


dynamic_agent = Agent(FunctionModel(dynamic_model), name='dynamic', deps_type=str)


@dynamic_agent.toolset(id='by_tenant')
def tenant_tools(ctx: RunContext[str]) -> AbstractToolset[str]:
    CALLS.append(f'build:{ctx.deps}')

    async def lookup(key: str) -> str:
        CALLS.append(f'lookup:{key}')
        return f'{key}@{ctx.deps}'

    return FunctionToolset([lookup], instructions=f'Tenant {ctx.deps} tools.')


temporal_dynamic_agent = TemporalAgent(dynamic_agent)


@workflow.defn
class DynamicWorkflow:
    @workflow.run
    async def run(self, tenant: str) -> str:
        return (await temporal_dynamic_agent.run('look it up', deps=tenant)).output


async def test_dynamic_toolset_is_built_listed_and_called_in_activities_with_its_instructions(
    client: Client, task_queue: str
) -> None:
    CALLS.clear()
    SEEN_INSTRUCTIONS.clear()
    async with agent_worker(
        client, workflows=[DynamicWorkflow], agents=[temporal_dynamic_agent], task_queue=task_queue
    ):
        handle = await client.start_workflow(
            DynamicWorkflow.run, 'acme', id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
        )
        assert await handle.result() == 'found k1@acme'
    assert 'lookup:k1' in CALLS
    assert SEEN_INSTRUCTIONS == ['Tenant acme tools.', 'Tenant acme tools.']
    model_summary = f'request model: {FunctionModel(dynamic_model).model_id}'
    assert [(a.name, a.summary) for a in await scheduled_activities(client, handle)] == [
        ('agent__dynamic__dynamic_toolset__by_tenant__get_tools', 'get tools: by_tenant'),
        ('agent__dynamic__model_request', model_summary),
        ('agent__dynamic__dynamic_toolset__by_tenant__call_tool', 'call tool: by_tenant:lookup'),
        ('agent__dynamic__dynamic_toolset__by_tenant__get_tools', 'get tools: by_tenant'),
        ('agent__dynamic__model_request', model_summary),
    ]


once_agent = Agent(FunctionModel(dynamic_model), name='dynamic_once', deps_type=str)


@once_agent.toolset(id='once', per_run_step=False)
def once_tools(ctx: RunContext[str]) -> AbstractToolset[str]:
    CALLS.append(f'build once:{ctx.deps}')

    async def lookup(key: str) -> str:
        return f'{key}@{ctx.deps}'

    return FunctionToolset([lookup], instructions=f'Tenant {ctx.deps} tools, built once.')


temporal_once_agent = TemporalAgent(once_agent)


@workflow.defn
class DynamicOnceWorkflow:
    @workflow.run
    async def run(self, tenant: str) -> str:
        return (await temporal_once_agent.run('look it up', deps=tenant)).output


async def test_dynamic_toolset_built_once_per_run_is_listed_once_per_run(client: Client, task_queue: str) -> None:
    SEEN_INSTRUCTIONS.clear()
    async with agent_worker(
        client, workflows=[DynamicOnceWorkflow], agents=[temporal_once_agent], task_queue=task_queue
    ):
        handle = await client.start_workflow(
            DynamicOnceWorkflow.run,
            'acme',
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        assert await handle.result() == 'found k1@acme'
    # Both model requests get the toolset's instructions, from the one listing of the run.
    assert SEEN_INSTRUCTIONS == ['Tenant acme tools, built once.', 'Tenant acme tools, built once.']
    model_summary = f'request model: {FunctionModel(dynamic_model).model_id}'
    assert [(a.name, a.summary) for a in await scheduled_activities(client, handle)] == [
        ('agent__dynamic_once__dynamic_toolset__once__get_tools', 'get tools: once'),
        ('agent__dynamic_once__model_request', model_summary),
        ('agent__dynamic_once__dynamic_toolset__once__call_tool', 'call tool: once:lookup'),
        ('agent__dynamic_once__model_request', model_summary),
    ]
    # The history carries the `durable_temporal.dynamic_toolset_per_run` marker and replays with one listing.
    history = await handle.fetch_history()
    markers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]
    assert len(markers) == 1
    replayer = Replayer(workflows=[DynamicOnceWorkflow], plugins=[PydanticAIPlugin()])
    assert (await replayer.replay_workflow(history, raise_on_replay_failure=False)).replay_failure is None


def echo_instructions(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    request = messages[-1]
    assert isinstance(request, ModelRequest)
    return ModelResponse(parts=[TextPart(request.instructions or '<no instructions>')])


def instruct_only(ctx: RunContext[Any]) -> AbstractToolset[Any]:
    # A toolset that only contributes instructions: the listing has no tool to carry them on.
    return FunctionToolset(instructions=f'Only instructions, step {ctx.run_step}.')


instructing_agent = Agent(FunctionModel(echo_instructions), name='instruct_only_wrapped')
instructing_agent.toolset(id='instructs', per_run_step=False)(instruct_only)
temporal_instructing_agent = TemporalAgent(instructing_agent)
instructing_capability_agent = Agent(
    FunctionModel(echo_instructions), name='instruct_only_capability', capabilities=[TemporalDurability()]
)
instructing_capability_agent.toolset(id='instructs')(instruct_only)
INSTRUCTING: dict[str, Any] = {'wrapper': temporal_instructing_agent, 'capability': instructing_capability_agent}


@workflow.defn
class InstructOnlyWorkflow:
    @workflow.run
    async def run(self, which: str) -> str:
        return (await INSTRUCTING[which].run('hello')).output


@pytest.mark.parametrize('which', ['wrapper', 'capability'])
async def test_a_dynamic_toolset_without_tools_still_gives_its_instructions(
    client: Client, task_queue: str, which: str
) -> None:
    async with agent_worker(
        client,
        workflows=[InstructOnlyWorkflow],
        plugins=[AgentPlugin(agent) for agent in INSTRUCTING.values()],
        task_queue=task_queue,
    ):
        output = await client.execute_workflow(
            InstructOnlyWorkflow.run,
            which,
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
    assert output == 'Only instructions, step 1.'


# --- custom temporalize_toolset_func ------------------------------------------------------------------------------

WRAPPED_BY_CUSTOM: list[str] = []


def six_argument_temporalize(
    toolset: AbstractToolset[None],
    activity_name_prefix: str,
    activity_config: Any,
    tool_activity_config: Any,
    deps_type: Any,
    run_context_type: Any,
) -> AbstractToolset[None]:
    WRAPPED_BY_CUSTOM.append(f'{activity_name_prefix}:{toolset.id}')
    return temporalize_toolset(
        toolset, activity_name_prefix, activity_config, tool_activity_config, deps_type, run_context_type
    )


def test_custom_temporalize_toolset_func_and_activity_order() -> None:
    async def tool_a() -> str:
        return 'a'

    WRAPPED_BY_CUSTOM.clear()
    agent = TemporalAgent(
        Agent(FunctionModel(dynamic_model), name='custom', toolsets=[FunctionToolset([tool_a], id='extra')]),
        # Six-argument functions (without `agent`) are still accepted.
        temporalize_toolset_func=cast(Any, six_argument_temporalize),
    )
    assert WRAPPED_BY_CUSTOM == ['agent__custom:<agent>', 'agent__custom:extra']
    names = [getattr(fn, '__temporal_activity_definition').name for fn in agent.temporal_activities]
    assert names == [
        'agent__custom__event_stream_handler',
        'agent__custom__model_request',
        'agent__custom__model_request_stream',
        'agent__custom__model_compact_messages',
        'agent__custom__model_cancel_suspended_response',
        'agent__custom__model_count_tokens',
        'agent__custom__toolset__<agent>__call_tool',
        'agent__custom__toolset__extra__call_tool',
        'agent__custom__external_event_ask',
    ]


def test_dynamic_toolset_tool_cannot_disable_its_activity() -> None:
    with pytest.raises(UserError, match=r"Tool 'lookup' of dynamic toolset 'by_tenant'.*only built inside activities"):
        TemporalAgent(dynamic_agent, name='dynamic_no_activity', tool_activity_config={'by_tenant': {'lookup': False}})


TOOL_FAILED: Any = getattr(pydantic_ai_exceptions, 'ToolFailed', None)

tool_failed_agent = Agent(TestModel(call_tools=['failing_tool']), name='tool_failed_agent')


@tool_failed_agent.tool_plain
async def failing_tool() -> str:
    raise TOOL_FAILED('Disk full')


temporal_tool_failed_agent = TemporalAgent(tool_failed_agent)


@workflow.defn
class ToolFailedWorkflow:
    @workflow.run
    async def run(self) -> list[list[Any]]:
        result = await temporal_tool_failed_agent.run('Call the failing tool')
        return [
            [part.tool_name, part.content, cast(Any, part).outcome]
            for message in result.all_messages()
            for part in message.parts
            if isinstance(part, ToolReturnPart)
        ]


@pytest.mark.skipif(TOOL_FAILED is None, reason='ToolFailed is a pydantic-ai 2.x exception')
async def test_a_tool_raising_tool_failed_in_its_activity_returns_a_failed_result(client: Client, task_queue: str):
    """`ToolFailed` raised in the activity failed the workflow; the model must see a failed tool result instead."""
    async with agent_worker(
        client, workflows=[ToolFailedWorkflow], agents=[temporal_tool_failed_agent], task_queue=task_queue
    ):
        returns = await client.execute_workflow(
            ToolFailedWorkflow.run, id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
        )
    assert returns == [['failing_tool', 'Disk full', 'failed']]
