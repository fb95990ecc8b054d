from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from dbos import DBOS, SetWorkflowID
from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel

from durable_dbos import DBOSAgent
from durable_dbos.testing import workflow_step_names_async

from .conftest import both_backends

pytestmark = pytest.mark.anyio


def make_agent(name: str, calls: list[str]) -> DBOSAgent[None, str]:
    agent = Agent(TestModel(), name=name)

    @agent.tool_plain
    def get_weather(city: str) -> str:
        calls.append(city)
        return f'sunny in {city}'

    return DBOSAgent(agent)


@both_backends
async def test_run_is_workflow_with_model_and_tool_steps(
    agent_name: str, dbos_launch: Callable[[], None], backend: str
) -> None:
    calls: list[str] = []
    dbos_agent = make_agent(agent_name, calls)
    dbos_launch()

    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        result = await dbos_agent.run('weather?')

    assert result.output == '{"get_weather":"sunny in a"}'
    assert calls == ['a']
    status = await DBOS.get_workflow_status_async(workflow_id)
    assert status is not None
    assert status.name == f'{agent_name}.run'
    assert status.status == 'SUCCESS'
    assert await workflow_step_names_async(workflow_id) == [
        f'{agent_name}__model.request',
        f'{agent_name}__toolset__<agent>.call_tool.get_weather',
        f'{agent_name}__model.request',
    ]
