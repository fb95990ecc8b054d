"""Heartbeats: tool activities beat while they run when given a `heartbeat_timeout`; model activities of the
capability form get a 30 s heartbeat timeout by default, tool activities none."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from core_helpers import WORKFLOW_TIMEOUT
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.toolsets import FunctionToolset
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityConfig

from durable_temporal import AgentPlugin, TemporalAgent, TemporalDurability
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio


async def slow_tool() -> str:
    """Run longer than the heartbeat timeout the agents below give their activities."""
    await asyncio.sleep(2.5)
    return 'slow tool finished'


def call_slow_tool_once(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    for message in messages:
        for part in message.parts:
            if isinstance(part, ToolReturnPart):
                return ModelResponse(parts=[TextPart(str(part.content))])
    return ModelResponse(parts=[ToolCallPart('slow_tool', {})])


# One attempt only: a missed heartbeat would fail the run instead of being retried.
SHORT_HEARTBEAT = ActivityConfig(
    start_to_close_timeout=timedelta(seconds=30),
    heartbeat_timeout=timedelta(seconds=1),
    retry_policy=RetryPolicy(maximum_attempts=1),
)

capability_agent = Agent(
    FunctionModel(call_slow_tool_once),
    name='hb_capability',
    toolsets=[FunctionToolset([slow_tool], id='slow_tools')],
    capabilities=[TemporalDurability(activity_config=SHORT_HEARTBEAT)],
)
wrapper_agent = TemporalAgent(
    Agent(FunctionModel(call_slow_tool_once), name='hb_wrapper', toolsets=[FunctionToolset([slow_tool], id='slow')]),
    toolset_activity_config={'slow': SHORT_HEARTBEAT},
)
default_agent = Agent(
    FunctionModel(call_slow_tool_once),
    name='hb_default',
    toolsets=[FunctionToolset([slow_tool], id='slow_tools')],
    capabilities=[TemporalDurability()],
)
AGENTS: dict[str, Any] = {'capability': capability_agent, 'wrapper': wrapper_agent, 'default': default_agent}


@workflow.defn
class HeartbeatWorkflow:
    @workflow.run
    async def run(self, which: str) -> str:
        return (await AGENTS[which].run('call the slow tool')).output


async def _run(client: Client, task_queue: str, which: str) -> tuple[str, dict[str, timedelta | None]]:
    async with agent_worker(
        client,
        workflows=[HeartbeatWorkflow],
        plugins=[AgentPlugin(agent) for agent in AGENTS.values()],
        task_queue=task_queue,
    ):
        handle = await client.start_workflow(
            HeartbeatWorkflow.run,
            which,
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        output = await handle.result()
    heartbeat_timeouts: dict[str, timedelta | None] = {}
    for event in (await handle.fetch_history()).events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            timeout = attrs.heartbeat_timeout.ToTimedelta() if attrs.HasField('heartbeat_timeout') else None
            heartbeat_timeouts[attrs.activity_type.name] = timeout or None
    return output, heartbeat_timeouts


@pytest.mark.parametrize('which', ['capability', 'wrapper'])
async def test_a_tool_outliving_its_heartbeat_timeout_completes(client: Client, task_queue: str, which: str) -> None:
    """The tool runs 2.5 s under a 1 s heartbeat timeout, one attempt: it beats, so the server does not fail it."""
    output, timeouts = await _run(client, task_queue, which)
    assert output == 'slow tool finished'
    tool_activity = next(name for name in timeouts if name.endswith('__call_tool'))
    assert timeouts[tool_activity] == timedelta(seconds=1)


async def test_default_heartbeat_timeouts_of_the_capability_form(client: Client, task_queue: str) -> None:
    """Model requests: 30 s (they beat, so a dead worker's request is retried soon); tools: none unless configured."""
    output, timeouts = await _run(client, task_queue, 'default')
    assert output == 'slow tool finished'
    assert timeouts == {
        'agent__hb_default__model_request': timedelta(seconds=30),
        'agent__hb_default__toolset__slow_tools__call_tool': None,
    }
