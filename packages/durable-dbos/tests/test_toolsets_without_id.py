"""Toolsets without an `id` work as with the reference (which accepts them): their call steps are named after the agent
and the tool, `{agent}__toolset.call_tool.{tool}`. Only two of them defining the same tool are refused."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from dbos import DBOS, SetWorkflowID
from pydantic_ai import Agent, RunContext
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ToolReturnPart
from pydantic_ai.toolsets import AbstractToolset, FunctionToolset

from durable_dbos import DBOSAgent
from durable_dbos.testing import workflow_step_names_async

from .helpers import call, respond, scripted_model

pytestmark = pytest.mark.anyio

CALLS: list[str] = []


def shout(text: str) -> str:
    """A module-level tool: run-time toolsets are workflow inputs, so they must pickle."""
    CALLS.append(f'shout {text}')
    return text.upper()


def whisper(text: str) -> str:
    CALLS.append(f'whisper {text}')
    return text.lower()


async def test_toolsets_without_id_record_steps_named_after_agent_and_tool(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    model = scripted_model(
        respond(call('shout', {'text': 'a'}, 'c1'), call('whisper', {'text': 'B'}, 'c2'), call('echo', {}, 'c3')),
        respond('done'),
    )
    agent = Agent(model, name=agent_name, toolsets=[FunctionToolset([shout])])

    @agent.toolset
    def echo_tools(ctx: RunContext[None]) -> AbstractToolset[None]:
        def echo() -> str:
            CALLS.append('echo')
            return 'echo'

        return FunctionToolset([echo])

    dbos_agent = DBOSAgent(agent)
    dbos_launch()
    CALLS.clear()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        result = await dbos_agent.run('go', toolsets=[FunctionToolset([whisper])])

    returns = [p.content for m in result.all_messages() for p in m.parts if isinstance(p, ToolReturnPart)]
    assert returns == ['A', 'b', 'echo']
    steps = await DBOS.list_workflow_steps_async(workflow_id)
    assert [step['function_name'] for step in steps] == [
        f'{agent_name}__model.request',
        f'{agent_name}__toolset.call_tool.shout',
        f'{agent_name}__toolset.call_tool.whisper',
        f'{agent_name}__toolset.call_tool.echo',
        f'{agent_name}__model.request',
    ]
    assert sorted(CALLS) == ['echo', 'shout a', 'whisper B']

    # A replay up to the last model request takes the three results from the steps: no tool runs again.
    forked = await DBOS.fork_workflow_async(workflow_id, steps[-1]['function_id'])
    assert (await forked.get_result()).output == 'done'
    assert await workflow_step_names_async(forked.workflow_id) == [step['function_name'] for step in steps]
    assert sorted(CALLS) == ['echo', 'shout a', 'whisper B']


async def test_two_toolsets_without_id_defining_the_same_tool_are_refused(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    """Prefixes make the tools distinct for the model, but both toolsets call theirs `shout`: same step name."""
    model = scripted_model(respond(call('loud_shout', {'text': 'a'})), respond('done'))
    toolsets = [FunctionToolset([shout]).prefixed('loud'), FunctionToolset([shout]).prefixed('very')]
    dbos_agent = DBOSAgent(Agent(model, name=agent_name, toolsets=toolsets))
    dbos_launch()
    with pytest.raises(
        UserError,
        match=r"FunctionToolset and FunctionToolset both define a tool 'shout' and neither has an `id`: .* "
        r'Pass a unique `id=` to each',
    ):
        await dbos_agent.run('go')


async def test_the_same_tool_in_toolsets_with_ids_is_fine(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    model = scripted_model(respond(call('loud_shout', {'text': 'a'})), respond('done'))
    toolsets = [
        FunctionToolset([shout], id='loud').prefixed('loud'),
        FunctionToolset([shout]).prefixed('very'),  # one id-less `shout` is unambiguous
    ]
    dbos_agent = DBOSAgent(Agent(model, name=agent_name, toolsets=toolsets))
    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        assert (await dbos_agent.run('go')).output == 'done'
    assert (await workflow_step_names_async(workflow_id))[1] == f'{agent_name}__toolset__loud.call_tool.shout'
