"""The capability form selects models by key string (pydantic-ai 2.x), and user code inside a step cannot enqueue.

A recovered workflow runs its code again, so a model selected by a string is selected again by the same string; a
step's recorded result is given back without running it, so `enqueue()` inside a step refuses.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from dbos import DBOS, SetWorkflowID
from pydantic_ai import Agent, RunContext
from pydantic_ai.exceptions import UserError
from pydantic_ai.models.test import TestModel
from pydantic_ai.toolsets import FunctionToolset

from durable_dbos import DBOSDurability
from durable_dbos.testing import workflow_step_names_async
from durable_kernel import PYDANTIC_AI_2

pytestmark = pytest.mark.anyio

needs_2x = pytest.mark.skipif(not PYDANTIC_AI_2, reason='pydantic-ai 1.107 builds model strings before capabilities')


def _named(text: str, name: str) -> TestModel:
    model = TestModel(custom_output_text=text)
    model._model_name = name  # pyright: ignore[reportPrivateUsage]
    return model


async def _run(workflow: Callable[..., Any], *args: Any) -> tuple[Any, list[str]]:
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        output = await workflow(*args)
    return output, await workflow_step_names_async(workflow_id)


@needs_2x
async def test_a_registered_model_is_selected_by_its_key_in_run_and_override(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    agent = Agent(
        TestModel(custom_output_text='default'),
        name=agent_name,
        capabilities=[DBOSDurability(models={'alt': _named('alt', 'alt-model')})],
    )

    @DBOS.workflow(name=f'{agent_name}.keys')
    async def keys() -> list[str]:
        by_key = (await agent.run('a', model='alt')).output
        with agent.override(model='alt'):
            overridden = (await agent.run('b')).output
        return [by_key, overridden, (await agent.run('c', model='default')).output]

    dbos_launch()
    outputs, steps = await _run(keys)
    assert outputs == ['alt', 'alt', 'default']
    assert steps == [f'{agent_name}__model.request'] * 3


@needs_2x
async def test_a_string_default_model_and_a_model_name_string_are_accepted(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    agent = Agent('test', name=agent_name, capabilities=[DBOSDurability()])
    keyed = Agent(
        'primary', name=f'{agent_name}-keyed', capabilities=[DBOSDurability(models={'primary': _named('p', 'p')})]
    )

    @DBOS.workflow(name=f'{agent_name}.strings')
    async def strings() -> list[str]:
        return [
            (await agent.run('a')).output,
            (await agent.run('b', model='test')).output,
            (await keyed.run('c')).output,
        ]

    dbos_launch()
    outputs, _ = await _run(strings)
    assert outputs == ['success (no tool calls)', 'success (no tool calls)', 'p']


async def test_an_unregistered_model_instance_is_refused_and_a_registered_one_accepted(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    registered = _named('registered', 'registered-model')
    agent = Agent(TestModel(), name=agent_name, capabilities=[DBOSDurability(models={'r': registered})])

    @DBOS.workflow(name=f'{agent_name}.instances')
    async def instances(use_registered: bool) -> str:
        return (await agent.run('a', model=registered if use_registered else TestModel())).output

    dbos_launch()
    assert (await _run(instances, True))[0] == 'registered'
    with pytest.raises(UserError, match='neither the agent.s default model nor registered'):
        await _run(instances, False)


def test_the_default_key_is_reserved() -> None:
    with pytest.raises(UserError, match="'default'"):
        DBOSDurability(models={'default': TestModel()})


async def test_enqueue_inside_a_tool_step_and_an_event_handler_step_is_refused(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    refusals: list[str] = []

    async def handler(ctx: RunContext[Any], stream: Any) -> None:
        async for _ in stream:
            try:
                ctx.enqueue('later')
            except UserError as error:
                refusals.append(str(error))

    async def enqueue(ctx: RunContext[None]) -> str:
        ctx.enqueue('later')
        return 'done'

    in_step = Agent(
        TestModel(), name=agent_name, tools=[enqueue], capabilities=[DBOSDurability(function_tool_steps=True)]
    )
    handled = Agent(TestModel(), name=f'{agent_name}-h', capabilities=[DBOSDurability(event_stream_handler=handler)])

    @DBOS.workflow(name=f'{agent_name}.tool')
    async def tool_workflow() -> str:
        return (await in_step.run('go')).output

    @DBOS.workflow(name=f'{agent_name}.handler')
    async def handler_workflow() -> str:
        return (await handled.run('go')).output

    dbos_launch()
    with pytest.raises(UserError, match='enqueued messages would be dropped'):
        await _run(tool_workflow)
    assert (await _run(handler_workflow))[0] == 'success (no tool calls)'
    assert refusals
    assert all('durable step' in refusal for refusal in refusals)
    # Outside a workflow the tool is plain code and the message is delivered.
    assert (await in_step.run('go')).output == '{"enqueue":"done"}'


def test_two_toolsets_with_one_id_are_refused_when_the_capability_binds(agent_name: str) -> None:
    with pytest.raises(UserError, match="Two toolsets have the same `id` 'dup'"):
        DBOSDurability.from_agent(
            Agent(
                TestModel(),
                name=agent_name,
                toolsets=[FunctionToolset[None](id='dup'), FunctionToolset[None](id='dup')],
                capabilities=[DBOSDurability()],
            )
        )
