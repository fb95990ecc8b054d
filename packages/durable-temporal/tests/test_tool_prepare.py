"""A function tool's `prepare` runs in workflow code only: the tool-call activity uses the definition it returned."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any

import pytest
from core_helpers import WORKFLOW_TIMEOUT
from pydantic_ai import Agent, RunContext, Tool
from pydantic_ai.messages import ModelMessage, ModelResponse, RetryPromptPart, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.toolsets import FunctionToolset
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner

from durable_temporal import AgentPlugin, TemporalAgent, TemporalDurability
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio

# Unsandboxed workflows below: workflow code and activities share this module's state.
PREPARED_AT_STEPS: list[int] = []
DESCRIPTIONS_SEEN: list[str | None] = []


async def prepare_sleepy(ctx: RunContext[Any], tool_def: ToolDefinition) -> ToolDefinition:
    """A timeout on the first preparation only: preparing again in the activity would drop it."""
    PREPARED_AT_STEPS.append(ctx.run_step)
    first = len(PREPARED_AT_STEPS) == 1
    return dataclasses.replace(
        tool_def, description=f'prepared {len(PREPARED_AT_STEPS)}', timeout=0.01 if first else None
    )


async def sleepy() -> str:
    await asyncio.sleep(0.5)
    return 'slept'  # pragma: no cover - timed out


def call_sleepy_once(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    DESCRIPTIONS_SEEN.append(info.function_tools[0].description)
    if len(messages) == 1:
        return ModelResponse(parts=[ToolCallPart('sleepy', {})])
    return ModelResponse(parts=[TextPart('done')])


def _toolset() -> FunctionToolset[Any]:
    return FunctionToolset([Tool(sleepy, prepare=prepare_sleepy)], id='prepared')


AGENTS: dict[str, Any] = {
    'capability': Agent(
        FunctionModel(call_sleepy_once), name='prep_cap', toolsets=[_toolset()], capabilities=[TemporalDurability()]
    ),
    'wrapper': TemporalAgent(Agent(FunctionModel(call_sleepy_once), name='prep_wrap', toolsets=[_toolset()])),
}


@workflow.defn
class PrepareWorkflow:
    @workflow.run
    async def run(self, which: str) -> list[str]:
        messages = (await AGENTS[which].run('go')).all_messages()
        # The timeout comes back as a retry prompt (1.107) or a tool return (newer 2.x releases).
        return [
            str(part.content)
            for message in messages
            for part in message.parts
            if isinstance(part, (RetryPromptPart, ToolReturnPart))
        ]


@pytest.mark.parametrize('which', ['capability', 'wrapper'])
async def test_prepare_runs_in_workflow_code_only(client: Client, task_queue: str, which: str) -> None:
    PREPARED_AT_STEPS.clear()
    DESCRIPTIONS_SEEN.clear()
    async with agent_worker(
        client,
        workflows=[PrepareWorkflow],
        plugins=[AgentPlugin(agent) for agent in AGENTS.values()],
        task_queue=task_queue,
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        tool_results = await client.execute_workflow(
            PrepareWorkflow.run, which, id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
        )
    # Once per model step, in workflow code; not again in the tool-call activity.
    assert PREPARED_AT_STEPS == [1, 2]
    assert DESCRIPTIONS_SEEN == ['prepared 1', 'prepared 2']
    # The activity enforced the timeout of the definition the call was made with.
    assert tool_results == ['Timed out after 0.01 seconds.']
