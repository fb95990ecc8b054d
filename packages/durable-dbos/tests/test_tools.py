from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from dbos import SetWorkflowID
from pydantic_ai import Agent, RunContext, Tool
from pydantic_ai.exceptions import ApprovalRequired, CallDeferred, ModelRetry
from pydantic_ai.messages import ToolReturnPart
from pydantic_ai.models.test import TestModel
from pydantic_ai.tools import DeferredToolRequests
from pydantic_ai.toolsets import FunctionToolset

from durable_dbos import DBOSAgent
from durable_dbos.testing import workflow_step_names_async

from .helpers import call, respond, scripted_model

pytestmark = pytest.mark.anyio


def shout(text: str) -> str:
    """A module-level tool: run-time toolsets are workflow inputs, so they must pickle."""
    return text.upper()


async def test_run_time_toolsets_are_honoured_as_steps(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    model = scripted_model(respond(call('shout', {'text': 'hey'})), respond('done'))
    dbos_agent = DBOSAgent(Agent(model, name=agent_name))
    dbos_launch()

    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        result = await dbos_agent.run('go', toolsets=[FunctionToolset([shout], id='extra')])

    returns = [p for m in result.all_messages() for p in m.parts if isinstance(p, ToolReturnPart)]
    assert [r.content for r in returns] == ['HEY']
    assert await workflow_step_names_async(workflow_id) == [
        f'{agent_name}__model.request',
        f'{agent_name}__toolset__extra.call_tool.shout',
        f'{agent_name}__model.request',
    ]


async def test_model_retry_crosses_the_step_as_data(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    model = scripted_model(
        respond(call('flaky', {'n': 1})), respond(call('flaky', {'n': 2}, call_id='c2')), respond('done')
    )
    agent = Agent(model, name=agent_name)
    bodies: list[int] = []

    @agent.tool_plain(retries=2)
    def flaky(n: int) -> str:
        bodies.append(n)
        if n == 1:
            raise ModelRetry('try 2')
        return 'ok'

    # Generous DBOS retries: if `ModelRetry` escaped the step as an error, DBOS would re-run the tool body.
    dbos_agent = DBOSAgent(
        agent, tool_step_config={'retries_allowed': True, 'max_attempts': 3, 'interval_seconds': 0.01}
    )
    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        result = await dbos_agent.run('go')

    assert result.output == 'done'
    assert bodies == [1, 2]
    tool_step = f'{agent_name}__toolset__<agent>.call_tool.flaky'
    assert await workflow_step_names_async(workflow_id) == [
        f'{agent_name}__model.request',
        tool_step,
        f'{agent_name}__model.request',
        tool_step,
        f'{agent_name}__model.request',
    ]


async def test_approval_and_deferral_raised_in_steps_end_the_run_with_requests(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    model = scripted_model(respond(call('pay', {'amount': 5}), call('ship', {}, call_id='c2')), respond('done'))
    agent = Agent(model, name=agent_name, output_type=[str, DeferredToolRequests])
    bodies: list[str] = []

    @agent.tool(retries=0)
    def pay(ctx: RunContext[None], amount: int) -> str:
        bodies.append('pay')
        if not ctx.tool_call_approved:
            raise ApprovalRequired(metadata={'amount': amount})
        return 'paid'  # pragma: no cover - approved only in the HITL test

    @agent.tool_plain
    def ship() -> str:
        bodies.append('ship')
        raise CallDeferred(metadata={'queue': 'warehouse'})

    dbos_agent = DBOSAgent(
        agent, tool_step_config={'retries_allowed': True, 'max_attempts': 3, 'interval_seconds': 0.01}
    )
    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        result = await dbos_agent.run('go')

    assert isinstance(result.output, DeferredToolRequests)
    assert [(c.tool_name, result.output.metadata[c.tool_call_id]) for c in result.output.approvals] == [
        ('pay', {'amount': 5})
    ]
    assert [(c.tool_name, result.output.metadata[c.tool_call_id]) for c in result.output.calls] == [
        ('ship', {'queue': 'warehouse'})
    ]
    assert sorted(bodies) == ['pay', 'ship']
    assert await workflow_step_names_async(workflow_id) == [
        f'{agent_name}__model.request',
        f'{agent_name}__toolset__<agent>.call_tool.pay',
        f'{agent_name}__toolset__<agent>.call_tool.ship',
    ]


async def test_tool_can_opt_out_of_being_a_step(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    model = scripted_model(respond(call('pure', {}), call('effect', {}, call_id='c2')), respond('done'))
    agent = Agent(model, name=agent_name)

    @agent.tool_plain
    def pure() -> int:
        return 1

    @agent.tool_plain
    def effect() -> int:
        return 2

    dbos_agent = DBOSAgent(agent, tool_step_config_by_name={'pure': None})
    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        await dbos_agent.run('go')
    assert await workflow_step_names_async(workflow_id) == [
        f'{agent_name}__model.request',
        f'{agent_name}__toolset__<agent>.call_tool.effect',
        f'{agent_name}__model.request',
    ]


@pytest.mark.skipif(
    'durable' not in inspect.signature(Tool).parameters, reason="`Tool(..., durable=False)` is pydantic-ai 2.78's"
)
async def test_a_tool_that_says_durable_false_is_no_step(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    """pydantic-ai 2.78's `durable=False` opts a tool out of its step; the agent's per-tool setting still wins."""
    model = scripted_model(
        respond(call('pure', {}), call('effect', {}, call_id='c2'), call('forced', {}, call_id='c3')), respond('done')
    )
    opted_out: dict[str, Any] = {'durable': False}

    def pure() -> int:
        return 1

    def effect() -> int:
        return 2

    def forced() -> int:
        return 3

    agent = Agent(model, name=agent_name, tools=[Tool(pure, **opted_out), Tool(effect), Tool(forced, **opted_out)])
    dbos_agent = DBOSAgent(agent, tool_step_config_by_name={'forced': {}})
    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        await dbos_agent.run('go')
    assert await workflow_step_names_async(workflow_id) == [
        f'{agent_name}__model.request',
        f'{agent_name}__toolset__<agent>.call_tool.effect',
        f'{agent_name}__toolset__<agent>.call_tool.forced',
        f'{agent_name}__model.request',
    ]


async def test_compatibility_switch_records_no_tool_steps(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    """`function_tool_steps=False` gives the reference's step sequence, so workflows it started can recover."""
    agent = Agent(TestModel(), name=agent_name)

    @agent.tool_plain
    def ping() -> str:
        return 'pong'

    dbos_agent = DBOSAgent(agent, function_tool_steps=False)
    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        await dbos_agent.run('go')
    assert await workflow_step_names_async(workflow_id) == [f'{agent_name}__model.request'] * 2


async def test_dynamic_toolset_calls_are_steps(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    model = scripted_model(respond(call('shout', {'text': 'dyn'})), respond('done'))
    agent = Agent(model, name=agent_name)

    @agent.toolset(id='dynamic')
    def per_step_tools(ctx: RunContext[None]) -> FunctionToolset[None]:
        return FunctionToolset([shout], id='inner')

    dbos_agent = DBOSAgent(agent)
    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        result = await dbos_agent.run('go')
    returns = [p for m in result.all_messages() for p in m.parts if isinstance(p, ToolReturnPart)]
    assert [r.content for r in returns] == ['DYN']
    assert await workflow_step_names_async(workflow_id) == [
        f'{agent_name}__model.request',
        f'{agent_name}__toolset__dynamic.call_tool.shout',
        f'{agent_name}__model.request',
    ]
