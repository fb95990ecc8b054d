"""A tool's `args_validator` in the `validate_args` activities of pydantic-ai 2.x's `TemporalDurability`, on a real server.

Where the installed pydantic-ai runs it in a unit of its own (`ARGS_VALIDATOR_UNITS`: 2.68, 2.78), ours does too, with
the same activity names: `agent__{name}__toolset__{id}__validate_args` for function tools in the capability form, and
`agent__{name}__dynamic_toolset__{id}__validate_args` for dynamic toolsets in both forms. Elsewhere (1.107, 2.33) the
layout is the one earlier releases recorded: function tools are validated in workflow code, and a dynamic toolset's
validator is not run.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from core_helpers import WORKFLOW_TIMEOUT, activity_names
from pydantic_ai import Agent, DeferredToolRequests, RunContext, Tool
from pydantic_ai.exceptions import ModelRetry
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.toolsets import FunctionToolset
from temporalio import activity, workflow
from temporalio.client import Client

from durable_kernel import ARGS_VALIDATOR_UNITS
from durable_temporal import AgentPlugin, TemporalAgent, TemporalDurability
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio

VALIDATED_IN_ACTIVITIES: list[int] = []
"""The arguments each validator run inside an activity was given (activities run in this, the worker's, process)."""


def positive(ctx: RunContext[Any], n: int) -> None:
    """Refuse a negative `n` (the model is asked to retry)."""
    if activity.in_activity():
        VALIDATED_IN_ACTIVITIES.append(n)
    if n < 0:
        raise ModelRetry('n must be positive')


def double(n: int) -> int:
    """Twice `n`."""
    return 2 * n


def negative_then_positive(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Call `double` with -1, then (after the retry prompt) with 2, then answer."""
    responses = sum(isinstance(message, ModelResponse) for message in messages)
    if responses == 0:
        return ModelResponse(parts=[ToolCallPart('double', {'n': -1}, tool_call_id='c1')])
    if responses == 1:
        return ModelResponse(parts=[ToolCallPart('double', {'n': 2}, tool_call_id='c2')])
    return ModelResponse(parts=[TextPart('done')])


capability_agent = Agent(
    FunctionModel(negative_then_positive),
    name='va_cap',
    tools=[Tool(double, args_validator=positive)],
    capabilities=[TemporalDurability()],
)

dynamic_agent = Agent(FunctionModel(negative_then_positive), name='va_dyn', capabilities=[TemporalDurability()])


@dynamic_agent.toolset(id='checked')
def checked_tools(ctx: RunContext[None]) -> FunctionToolset[None]:
    toolset = FunctionToolset[None]()
    toolset.add_function(double, args_validator=positive)
    return toolset


approval_agent = Agent(
    FunctionModel(negative_then_positive),
    name='va_approve',
    tools=[Tool(double, args_validator=positive, requires_approval=True)],
    output_type=[str, DeferredToolRequests],
    capabilities=[TemporalDurability()],
)


wrapped_agent = TemporalAgent(
    Agent(FunctionModel(negative_then_positive), name='va_wrap', tools=[Tool(double, args_validator=positive)])
)


@workflow.defn
class CapabilityWorkflow:
    @workflow.run
    async def run(self, prompt: str) -> str:
        return (await capability_agent.run(prompt)).output


@workflow.defn
class DynamicWorkflow:
    @workflow.run
    async def run(self, prompt: str) -> str:
        return (await dynamic_agent.run(prompt)).output


@workflow.defn
class ApprovalWorkflow:
    @workflow.run
    async def run(self, prompt: str) -> list[str]:
        output = (await approval_agent.run(prompt)).output
        assert isinstance(output, DeferredToolRequests)
        return [call.tool_call_id for call in output.approvals]


@workflow.defn
class WrapperWorkflow:
    @workflow.run
    async def run(self, prompt: str) -> str:
        return (await wrapped_agent.run(prompt)).output


async def _execute(client: Client, workflow_run: Any, task_queue: str) -> tuple[str, list[str]]:
    handle = await client.start_workflow(
        workflow_run, 'go', id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
    )
    return await handle.result(), await activity_names(client, handle)


def _registered(agent: Any) -> list[str]:
    return sorted(activity._Definition.must_from_callable(fn).name or '' for fn in agent.temporal_activities)  # pyright: ignore[reportPrivateUsage, reportUnknownMemberType]


def test_the_validate_args_activities_are_registered_where_pydantic_ai_registers_them():
    cap = _registered(TemporalDurability.from_agent(capability_agent))
    dyn = _registered(TemporalDurability.from_agent(dynamic_agent))
    wrap = _registered(wrapped_agent)
    assert ('agent__va_cap__toolset__<agent>__validate_args' in cap) is ARGS_VALIDATOR_UNITS
    assert ('agent__va_dyn__dynamic_toolset__checked__validate_args' in dyn) is ARGS_VALIDATOR_UNITS
    # pydantic-ai 2.x's `TemporalAgent` validates function tools in workflow code.
    assert not any(name.endswith('__validate_args') for name in wrap)


async def test_a_function_tools_validator_runs_in_its_activity_in_the_capability_form(client: Client, task_queue: str):
    VALIDATED_IN_ACTIVITIES.clear()
    async with agent_worker(
        client, workflows=[CapabilityWorkflow], plugins=[AgentPlugin(capability_agent)], task_queue=task_queue
    ):
        output, names = await _execute(client, CapabilityWorkflow.run, task_queue)
    assert output == 'done'
    if ARGS_VALIDATOR_UNITS:
        validate = 'agent__va_cap__toolset__<agent>__validate_args'
        assert names == [
            'agent__va_cap__model_request',
            validate,  # -1: refused, the model is asked again (no call)
            'agent__va_cap__model_request',
            validate,
            'agent__va_cap__toolset__<agent>__call_tool',
            'agent__va_cap__model_request',
        ]
        assert VALIDATED_IN_ACTIVITIES == [-1, 2]
    else:
        # Validated in workflow code, as earlier releases recorded it.
        assert names == [
            'agent__va_cap__model_request',
            'agent__va_cap__model_request',
            'agent__va_cap__toolset__<agent>__call_tool',
            'agent__va_cap__model_request',
        ]
        assert VALIDATED_IN_ACTIVITIES == []


async def test_a_dynamic_tools_validator_runs_in_its_activity(client: Client, task_queue: str):
    VALIDATED_IN_ACTIVITIES.clear()
    async with agent_worker(
        client, workflows=[DynamicWorkflow], plugins=[AgentPlugin(dynamic_agent)], task_queue=task_queue
    ):
        output, names = await _execute(client, DynamicWorkflow.run, task_queue)
    prefix = 'agent__va_dyn__dynamic_toolset__checked'
    if ARGS_VALIDATOR_UNITS:
        assert output == 'done'
        assert names == [
            f'{prefix}__get_tools',
            'agent__va_dyn__model_request',
            f'{prefix}__validate_args',
            f'{prefix}__get_tools',
            'agent__va_dyn__model_request',
            f'{prefix}__validate_args',
            f'{prefix}__call_tool',
            f'{prefix}__get_tools',
            'agent__va_dyn__model_request',
        ]
        assert VALIDATED_IN_ACTIVITIES == [-1, 2]
    else:
        # The validator exists only inside the activities, and earlier releases never ran it: -1 is called.
        assert output == 'done'
        assert f'{prefix}__validate_args' not in names
        assert VALIDATED_IN_ACTIVITIES == []


async def test_the_wrapper_validates_function_tools_in_workflow_code(client: Client, task_queue: str):
    VALIDATED_IN_ACTIVITIES.clear()
    async with agent_worker(
        client, workflows=[WrapperWorkflow], plugins=[AgentPlugin(wrapped_agent)], task_queue=task_queue
    ):
        output, names = await _execute(client, WrapperWorkflow.run, task_queue)
    assert output == 'done'
    assert names == [
        'agent__va_wrap__model_request',
        'agent__va_wrap__model_request',
        'agent__va_wrap__toolset__<agent>__call_tool',
        'agent__va_wrap__model_request',
    ]
    assert VALIDATED_IN_ACTIVITIES == []


async def test_the_validator_runs_before_the_approval_gate(client: Client, task_queue: str):
    # Refused arguments ask the model again; only valid ones reach the approval request (no call activity at all).
    VALIDATED_IN_ACTIVITIES.clear()
    async with agent_worker(
        client, workflows=[ApprovalWorkflow], plugins=[AgentPlugin(approval_agent)], task_queue=task_queue
    ):
        handle = await client.start_workflow(
            ApprovalWorkflow.run, 'go', id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
        )
        assert await handle.result() == ['c2']
        names = await activity_names(client, handle)
    if ARGS_VALIDATOR_UNITS:
        validate = 'agent__va_approve__toolset__<agent>__validate_args'
        assert names == ['agent__va_approve__model_request', validate, 'agent__va_approve__model_request', validate]
        assert VALIDATED_IN_ACTIVITIES == [-1, 2]
    else:
        assert names == ['agent__va_approve__model_request', 'agent__va_approve__model_request']
