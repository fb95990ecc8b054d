from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from dbos import DBOS, SetWorkflowID
from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel

from durable_dbos import DBOSAgent, DBOSModel
from durable_dbos.testing import workflow_step_names, workflow_step_names_async

pytestmark = pytest.mark.anyio


def test_run_sync_is_a_workflow_running_run_as_its_child(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    dbos_agent = DBOSAgent(Agent(TestModel(custom_output_text='sync!'), name=agent_name))
    dbos_launch()

    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        result = dbos_agent.run_sync('hi')

    assert result.output == 'sync!'
    status = DBOS.get_workflow_status(workflow_id)
    assert status is not None
    assert status.name == f'{agent_name}.run_sync'
    steps = DBOS.list_workflow_steps(workflow_id)
    # Started from sync workflow code, DBOS records the child's start and then the wait for its result.
    assert [step['function_name'] for step in steps] == [f'{agent_name}.run', 'DBOS.getResult']
    child_id = steps[0]['child_workflow_id']
    assert child_id is not None
    assert workflow_step_names(child_id) == [f'{agent_name}__model.request']


async def test_run_inside_a_workflow_is_a_child_workflow(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    dbos_agent = DBOSAgent(Agent(TestModel(custom_output_text='child'), name=agent_name))

    @DBOS.workflow(name=f'{agent_name}.parent')
    async def parent() -> str:
        return (await dbos_agent.run('hi')).output

    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        assert await parent() == 'child'

    steps = await DBOS.list_workflow_steps_async(workflow_id)
    assert [step['function_name'] for step in steps] == [f'{agent_name}.run', 'DBOS.getResult']
    child_id = steps[0]['child_workflow_id']
    assert child_id is not None
    assert await workflow_step_names_async(child_id) == [f'{agent_name}__model.request']


async def test_iter_inside_a_workflow_records_steps_in_that_workflow(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    dbos_agent = DBOSAgent(Agent(TestModel(custom_output_text='iterated'), name=agent_name))

    @DBOS.workflow(name=f'{agent_name}.iterate')
    async def iterate() -> str:
        async with dbos_agent.iter('hi') as run:
            async for _ in run:
                pass
        assert run.result is not None
        return run.result.output

    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        assert await iterate() == 'iterated'
    assert await workflow_step_names_async(workflow_id) == [f'{agent_name}__model.request']


async def test_override_with_a_dbos_model(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    dbos_agent = DBOSAgent(Agent(TestModel(custom_output_text='original'), name=agent_name))
    replacement = DBOSModel(TestModel(custom_output_text='replaced'), step_name_prefix=f'{agent_name}_alt')
    dbos_launch()

    workflow_id = str(uuid.uuid4())
    with dbos_agent.override(model=replacement), SetWorkflowID(workflow_id):
        result = await dbos_agent.run('hi')
    assert result.output == 'replaced'
    assert await workflow_step_names_async(workflow_id) == [f'{agent_name}_alt__model.request']
    assert (await dbos_agent.run('hi')).output == 'original'


async def test_dbos_model_at_run_time(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    dbos_agent = DBOSAgent(Agent(TestModel(custom_output_text='original'), name=agent_name))
    other = DBOSModel(TestModel(custom_output_text='run-time'), step_name_prefix=f'{agent_name}_other')
    dbos_launch()

    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        result = await dbos_agent.run('hi', model=other)
    assert result.output == 'run-time'
    assert await workflow_step_names_async(workflow_id) == [f'{agent_name}_other__model.request']


async def test_outside_workflows_the_agent_behaves_as_the_plain_agent(agent_name: str) -> None:
    """No DBOS launched: `iter` and `run_stream` run the wrapped agent directly (nothing to record)."""
    dbos_agent = DBOSAgent(Agent(TestModel(custom_output_text='plain'), name=agent_name))
    async with dbos_agent.run_stream('hi') as stream:
        assert await stream.get_output() == 'plain'
    async with dbos_agent.iter('hi') as run:
        async for _ in run:
            pass
    assert run.result is not None
    assert run.result.output == 'plain'
