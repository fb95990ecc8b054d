"""Model requests: streamed with the event handler in activities, model choice by registry key/instance/provider."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable
from typing import Any

import pytest
from core_helpers import WORKFLOW_TIMEOUT, scheduled_activities
from pydantic_ai import Agent, RunContext
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import AgentStreamEvent
from pydantic_ai.models.test import TestModel
from pydantic_ai.providers import Provider
from pydantic_ai.usage import UsageLimits
from temporalio import workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError

from durable_temporal import TemporalAgent
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio

EVENTS: list[tuple[str, str]] = []


async def record_events(ctx: RunContext[str], events: AsyncIterable[AgentStreamEvent]) -> None:
    async for event in events:
        EVENTS.append((ctx.deps, event.event_kind))


streaming_agent = Agent(TestModel(), name='streaming', deps_type=str)


@streaming_agent.tool_plain
async def shout(text: str) -> str:
    return text.upper()


temporal_streaming_agent = TemporalAgent(streaming_agent, event_stream_handler=record_events)


@workflow.defn
class StreamingWorkflow:
    @workflow.run
    async def run(self, prompt: str) -> str:
        return (await temporal_streaming_agent.run(prompt, deps='d1')).output


async def test_streamed_requests_run_the_handler_in_activities(client: Client, task_queue: str) -> None:
    EVENTS.clear()
    async with agent_worker(
        client, workflows=[StreamingWorkflow], agents=[temporal_streaming_agent], task_queue=task_queue
    ):
        handle = await client.start_workflow(
            StreamingWorkflow.run, 'go', id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
        )
        output = await handle.result()
    assert output == (await streaming_agent.run('go', deps='d1')).output
    kinds = [kind for _, kind in EVENTS]
    assert {deps for deps, _ in EVENTS} == {'d1'}
    # The live model stream reached the handler inside the streamed-request activity ...
    assert 'part_start' in kinds
    assert 'final_result' in kinds
    # ... and tool events reached it through one activity per event.
    assert kinds.count('function_tool_call') == 1
    assert kinds.count('function_tool_result') == 1
    activities = [(a.name, a.summary) for a in await scheduled_activities(client, handle)]
    assert activities[0] == ('agent__streaming__model_request_stream', 'request model: test:test (stream)')
    handler_summaries = [s for n, s in activities if n == 'agent__streaming__event_stream_handler']
    assert 'handle event: function_tool_call' in handler_summaries
    assert 'handle event: function_tool_result' in handler_summaries
    assert [n for n, _ in activities].count('agent__streaming__model_request_stream') == 2
    assert ('agent__streaming__toolset__<agent>__call_tool', 'call tool: <agent>:shout') in activities


# --- model choice -------------------------------------------------------------------------------------------------

FACTORY_CALLS: list[tuple[str, str]] = []
fast_model = TestModel(custom_output_text='fast answer')
smart_model = TestModel(custom_output_text='smart answer')


def provider_factory(ctx: RunContext[Any], provider_name: str) -> Provider[Any]:
    FACTORY_CALLS.append((str(ctx.deps), provider_name))
    raise UserError(f'no {provider_name} provider in tests (tenant {ctx.deps})')


choice_agent = TemporalAgent(
    Agent(TestModel(custom_output_text='default answer'), name='choice', deps_type=str),
    models={'fast': fast_model, 'smart': smart_model},
    provider_factory=provider_factory,
)


@workflow.defn
class ChoiceWorkflow:
    @workflow.run
    async def run(self, model: str) -> str:
        if model == 'smart-instance':
            return (await choice_agent.run('q', model=smart_model, deps='t1')).output
        if model == 'none':
            return (await choice_agent.run('q', deps='t1')).output
        return (await choice_agent.run('q', model=model, deps='t1')).output


async def test_registered_models_by_key_or_instance_and_provider_strings(client: Client, task_queue: str) -> None:
    FACTORY_CALLS.clear()
    async with agent_worker(client, workflows=[ChoiceWorkflow], agents=[choice_agent], task_queue=task_queue):

        async def run(model: str) -> tuple[str, list[str | None]]:
            handle = await client.start_workflow(
                ChoiceWorkflow.run,
                model,
                id=str(uuid.uuid4()),
                task_queue=task_queue,
                execution_timeout=WORKFLOW_TIMEOUT,
            )
            output = await handle.result()
            return output, [a.summary for a in await scheduled_activities(client, handle)]

        assert await run('none') == ('default answer', ['request model: test:test'])
        assert await run('fast') == ('fast answer', ['request model: fast'])
        assert await run('smart-instance') == ('smart answer', ['request model: smart'])
        # An unregistered model string is built inside the activity.
        assert await run('test') == ('success (no tool calls)', ['request model: test'])

        with pytest.raises(WorkflowFailureError) as info:
            await client.execute_workflow(
                ChoiceWorkflow.run,
                'anthropic:claude-test',
                id=str(uuid.uuid4()),
                task_queue=task_queue,
                execution_timeout=WORKFLOW_TIMEOUT,
            )
    # The provider string was resolved inside the model activity, with the run context and the provider name.
    assert isinstance(info.value.cause, ActivityError)
    cause = info.value.cause.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == 'UserError'
    assert 'no anthropic provider in tests (tenant t1)' in cause.message
    assert FACTORY_CALLS == [('t1', 'anthropic')]
    # Outside a workflow, registry keys resolve too.
    assert (await choice_agent.run('q', model='fast', deps='t1')).output == 'fast answer'


# --- no model on the agent: the first registered model is the default ----------------------------------------------

first_model = TestModel(custom_output_text='first answer')
second_model = TestModel(custom_output_text='second answer')
modelless_agent = TemporalAgent(
    Agent(name='modelless', deps_type=str), models={'first': first_model, 'second': second_model}
)


@workflow.defn
class ModellessWorkflow:
    @workflow.run
    async def run(self, model: str) -> str:
        if model == 'none':
            return (await modelless_agent.run('q', deps='t1')).output
        return (await modelless_agent.run('q', model=model, deps='t1')).output


async def test_an_agent_without_a_model_defaults_to_the_first_registered_one(client: Client, task_queue: str) -> None:
    async with agent_worker(client, workflows=[ModellessWorkflow], agents=[modelless_agent], task_queue=task_queue):

        async def run(model: str) -> tuple[str, list[str | None]]:
            handle = await client.start_workflow(
                ModellessWorkflow.run,
                model,
                id=str(uuid.uuid4()),
                task_queue=task_queue,
                execution_timeout=WORKFLOW_TIMEOUT,
            )
            return await handle.result(), [a.summary for a in await scheduled_activities(client, handle)]

        assert await run('none') == ('first answer', ['request model: first'])
        assert await run('second') == ('second answer', ['request model: second'])
        assert await run('first') == ('first answer', ['request model: first'])
    # Outside a workflow, the first registered model is the default too.
    assert (await modelless_agent.run('q', deps='t1')).output == 'first answer'


# --- errors raised by the agent loop in workflow code ---------------------------------------------------------------

looping_agent = Agent(TestModel(), name='looping')


@looping_agent.tool_plain
async def again() -> str:
    return 'again'


temporal_looping_agent = TemporalAgent(looping_agent)


@workflow.defn
class LimitWorkflow:
    @workflow.run
    async def run(self) -> str:
        return (await temporal_looping_agent.run('loop', usage_limits=UsageLimits(request_limit=1))).output


async def test_usage_limit_exceeded_fails_the_workflow_visibly(client: Client, task_queue: str) -> None:
    async with agent_worker(client, workflows=[LimitWorkflow], agents=[temporal_looping_agent], task_queue=task_queue):
        with pytest.raises(WorkflowFailureError) as info:
            await client.execute_workflow(
                LimitWorkflow.run, id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
            )
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == 'UsageLimitExceeded'
    assert 'request_limit of 1' in cause.message
