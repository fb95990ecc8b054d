"""The capability form selects models by key string (pydantic-ai 2.x), and user code inside a task cannot enqueue.

A model selected by a string is the run's own instance inside its task (keyed by value like any other); a `models=`
key selects the registered instance; `enqueue()` inside a task refuses, since a retried flow run gets the task's
cached result back without running it again.
"""

from __future__ import annotations

from typing import Any

import pytest
from prefect import flow
from pydantic_ai import Agent, RunContext
from pydantic_ai.exceptions import UserError
from pydantic_ai.models.test import TestModel
from pydantic_ai.toolsets import FunctionToolset

from durable_kernel import PYDANTIC_AI_2
from durable_prefect import PrefectDurability

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures('prefect_server')]

needs_2x = pytest.mark.skipif(not PYDANTIC_AI_2, reason='pydantic-ai 1.107 builds model strings before capabilities')


def _named(text: str, name: str) -> TestModel:
    model = TestModel(custom_output_text=text)
    model._model_name = name  # pyright: ignore[reportPrivateUsage]
    return model


@needs_2x
async def test_a_registered_model_is_selected_by_its_key_in_run_and_override() -> None:
    agent = Agent(
        TestModel(custom_output_text='default'),
        name='sel-key',
        capabilities=[PrefectDurability(models={'alt': _named('alt', 'alt-model')})],
    )

    @flow
    async def user_flow() -> list[str]:
        by_key = (await agent.run('a', model='alt')).output
        with agent.override(model='alt'):
            overridden = (await agent.run('b')).output
        by_default_key = (await agent.run('c', model='default')).output
        return [by_key, overridden, by_default_key]

    assert await user_flow() == ['alt', 'alt', 'default']


@needs_2x
async def test_a_string_default_model_and_a_model_name_string_are_built_per_run() -> None:
    agent = Agent('test', name='sel-string', capabilities=[PrefectDurability()])

    @flow
    async def user_flow() -> list[str]:
        return [(await agent.run('a')).output, (await agent.run('b', model='test')).output]

    assert await user_flow() == ['success (no tool calls)', 'success (no tool calls)']


@needs_2x
async def test_a_string_default_that_is_a_key_selects_the_registered_model() -> None:
    agent = Agent(
        'primary', name='sel-string-key', capabilities=[PrefectDurability(models={'primary': _named('p', 'p')})]
    )

    @flow
    async def user_flow() -> str:
        return (await agent.run('a')).output

    assert await user_flow() == 'p'


async def test_an_unregistered_model_instance_is_refused_and_a_registered_one_accepted() -> None:
    registered = _named('registered', 'registered-model')
    agent = Agent(TestModel(), name='sel-instance', capabilities=[PrefectDurability(models={'r': registered})])

    @flow
    async def with_registered() -> str:
        return (await agent.run('a', model=registered)).output

    @flow
    async def with_unregistered() -> str:
        return (await agent.run('a', model=TestModel())).output

    assert await with_registered() == 'registered'
    with pytest.raises(UserError, match='neither the agent.s default model nor registered'):
        await with_unregistered()


def test_the_default_key_is_reserved_and_an_agent_needs_a_model() -> None:
    with pytest.raises(UserError, match="'default'"):
        PrefectDurability(models={'default': TestModel()})
    with pytest.raises(UserError, match='needs to have a `model`'):
        PrefectDurability.from_agent(Agent(name='sel-no-model', capabilities=[PrefectDurability()]))


async def test_enqueue_inside_a_tool_task_is_refused_and_works_outside_a_flow() -> None:
    async def enqueue(ctx: RunContext[None]) -> str:
        ctx.enqueue('later')
        return 'done'

    agent = Agent(TestModel(), name='sel-enqueue', tools=[enqueue], capabilities=[PrefectDurability()])

    @flow
    async def user_flow() -> str:
        return (await agent.run('go')).output

    with pytest.raises(UserError, match='enqueued messages would be dropped'):
        await user_flow()
    # Outside a flow the tool runs as plain code and the message is delivered.
    assert (await agent.run('go')).output == '{"enqueue":"done"}'


async def test_enqueue_inside_the_event_handler_task_is_refused() -> None:
    refusals: list[str] = []

    async def handler(ctx: RunContext[Any], stream: Any) -> None:
        async for _ in stream:
            try:
                ctx.enqueue('later')
            except UserError as error:
                refusals.append(str(error))

    async def tool() -> str:
        return 'ok'

    agent = Agent(
        TestModel(), name='sel-handler', tools=[tool], capabilities=[PrefectDurability(event_stream_handler=handler)]
    )

    @flow
    async def user_flow() -> str:
        return (await agent.run('go')).output

    assert await user_flow() == '{"tool":"ok"}'
    assert refusals
    assert all('durable task' in refusal for refusal in refusals)


def test_two_toolsets_with_one_id_are_refused_when_the_capability_binds() -> None:
    # Their MCP listings would share one cache key, so one toolset's tools would be listed for the other.
    with pytest.raises(UserError, match="Two toolsets have the same `id` 'dup'"):
        PrefectDurability.from_agent(
            Agent(
                TestModel(),
                name='sel-dup',
                toolsets=[FunctionToolset[None](id='dup'), FunctionToolset[None](id='dup')],
                capabilities=[PrefectDurability()],
            )
        )
