from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from dbos import DBOS, SetWorkflowID
from pydantic_ai import Agent
from pydantic_ai.exceptions import UsageLimitExceeded
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.usage import UsageLimits

from durable_dbos import DBOSAgent, StepConfig
from durable_dbos.testing import workflow_step_names_async

pytestmark = pytest.mark.anyio


class TransientError(Exception):
    pass


def flaky_model(attempts: list[int]) -> FunctionModel:
    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        attempts.append(len(attempts))
        if len(attempts) == 1:
            raise TransientError('provider hiccup')
        return ModelResponse(parts=[TextPart('recovered')])

    return FunctionModel(answer)


async def test_model_step_config_retries_the_request_step(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    attempts: list[int] = []
    config: StepConfig = {'retries_allowed': True, 'max_attempts': 3, 'interval_seconds': 0.01}
    dbos_agent = DBOSAgent(Agent(flaky_model(attempts), name=agent_name), model_step_config=config)
    dbos_launch()

    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        result = await dbos_agent.run('hi')
    assert result.output == 'recovered'
    assert attempts == [0, 1]
    assert await workflow_step_names_async(workflow_id) == [f'{agent_name}__model.request']
    assert config == {'retries_allowed': True, 'max_attempts': 3, 'interval_seconds': 0.01}  # not mutated


async def test_without_step_config_a_failed_request_fails_the_workflow(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    attempts: list[int] = []
    dbos_agent = DBOSAgent(Agent(flaky_model(attempts), name=agent_name))
    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with pytest.raises(TransientError, match='provider hiccup'), SetWorkflowID(workflow_id):
        await dbos_agent.run('hi')
    assert attempts == [0]
    status = await DBOS.get_workflow_status_async(workflow_id)
    assert status is not None
    assert status.status == 'ERROR'


async def test_usage_limit_fails_the_workflow_visibly(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    agent = Agent(TestModel(), name=agent_name)

    @agent.tool_plain
    def ping() -> str:
        return 'pong'

    dbos_agent = DBOSAgent(agent)
    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with pytest.raises(UsageLimitExceeded), SetWorkflowID(workflow_id):
        await dbos_agent.run('hi', usage_limits=UsageLimits(request_limit=1))
    status = await DBOS.get_workflow_status_async(workflow_id)
    assert status is not None
    assert status.status == 'ERROR'
