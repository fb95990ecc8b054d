"""TemporalAgent.run inside a workflow: the loop in workflow code, model requests and tool calls as activities."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from core_helpers import WORKFLOW_TIMEOUT, scheduled_activities
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import ModelRequest
from pydantic_ai.models.test import TestModel
from temporalio import workflow
from temporalio.client import Client

from durable_temporal import TemporalAgent
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio


@dataclass
class Deps:
    city_suffix: str


TOOL_CALLS: list[str] = []

weather_agent = Agent(TestModel(), name='weather', deps_type=Deps, instructions='Be brief.')


@weather_agent.tool
async def get_weather(ctx: RunContext[Deps], city: str) -> str:
    TOOL_CALLS.append(city)
    return f'sunny in {city}{ctx.deps.city_suffix}'


@weather_agent.tool_plain
def get_time() -> str:
    return '12:00'


temporal_weather_agent = TemporalAgent(weather_agent)


@workflow.defn
class WeatherWorkflow:
    @workflow.run
    async def run(self, prompt: str) -> str:
        result = await temporal_weather_agent.run(prompt, deps=Deps(city_suffix='!'))
        return result.output


async def test_run_in_workflow_schedules_model_and_tool_activities(client: Client, task_queue: str) -> None:
    TOOL_CALLS.clear()
    async with agent_worker(
        client, workflows=[WeatherWorkflow], agents=[temporal_weather_agent], task_queue=task_queue
    ):
        handle = await client.start_workflow(
            WeatherWorkflow.run,
            'weather?',
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        output = await handle.result()
    assert 'sunny in a!' in output
    assert TOOL_CALLS == ['a']
    activities = await scheduled_activities(client, handle)
    assert [(a.name, a.summary) for a in activities] == [
        ('agent__weather__model_request', 'request model: test:test'),
        ('agent__weather__toolset__<agent>__call_tool', 'call tool: <agent>:get_weather'),
        ('agent__weather__toolset__<agent>__call_tool', 'call tool: <agent>:get_time'),
        ('agent__weather__model_request', 'request model: test:test'),
    ]


# --- sync callbacks in workflow code, allowed overrides and run parameters ------------------------------------------

callbacks_agent = Agent(TestModel(), name='callbacks', deps_type=str)


@callbacks_agent.instructions
def sync_instructions(ctx: RunContext[str]) -> str:
    # A sync callback in workflow code: it must run inline, the sandbox forbids the thread pydantic-ai would use.
    return f'Serve {ctx.deps}.'


@callbacks_agent.output_validator
def sync_validator(output: str) -> str:
    return output + ' (validated)'


temporal_callbacks_agent = TemporalAgent(callbacks_agent)


@workflow.defn
class CallbacksWorkflow:
    @workflow.run
    async def run(self) -> list[str]:
        with temporal_callbacks_agent.override(deps='overridden tenant', instructions='Overridden instructions.'):
            overridden = await temporal_callbacks_agent.run('hi', deps='tenant')
        result = await temporal_callbacks_agent.run(
            'hi',
            deps='tenant',
            conversation_id='conversation-1',
            retries=3,
            metadata={'k': 'v'},
            model_settings={'temperature': 0.0},
            instructions='Extra instructions.',
        )
        requests = [m for m in result.all_messages() if isinstance(m, ModelRequest)]
        return [
            result.output,
            str(requests[0].instructions),
            str(result.conversation_id),
            str(result.metadata),
            overridden.output,
            str([m for m in overridden.all_messages() if isinstance(m, ModelRequest)][0].instructions),
        ]


async def test_sync_callbacks_overrides_and_run_parameters_inside_a_workflow(client: Client, task_queue: str) -> None:
    async with agent_worker(
        client, workflows=[CallbacksWorkflow], agents=[temporal_callbacks_agent], task_queue=task_queue
    ):
        (
            output,
            instructions,
            conversation_id,
            metadata,
            overridden,
            overridden_instructions,
        ) = await client.execute_workflow(
            CallbacksWorkflow.run, id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
        )
    assert output.endswith(' (validated)')
    assert 'Serve tenant.' in instructions
    assert 'Extra instructions.' in instructions
    assert conversation_id == 'conversation-1'
    assert metadata == "{'k': 'v'}"
    assert overridden.endswith(' (validated)')
    assert overridden_instructions == 'Overridden instructions.'
