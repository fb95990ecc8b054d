"""Counting tokens ahead of a request (`UsageLimits(count_tokens_before_request=True)`) inside a DBOS workflow.

Counting is a request to the provider, so inside a workflow it is its own step, `{agent}__model.count_tokens`
(pydantic-ai 2.78's name for the same agent), before the request's step, in both forms. The step's result is
recorded: a workflow re-executed from after it does not count again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from dbos import DBOS, SetWorkflowID
from pydantic_ai import Agent
from pydantic_ai.exceptions import UsageLimitExceeded
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.usage import RequestUsage, UsageLimits

from durable_dbos import DBOSAgent, DBOSDurability
from durable_dbos.testing import workflow_step_names_async
from durable_kernel import CountTokensResult

pytestmark = pytest.mark.anyio

TOKENS_PER_MESSAGE = 10


def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart(f'{len(messages)} messages')])


class CountingModel(FunctionModel):
    """A model whose provider counts a request's tokens (ten per message), recording where each count ran."""

    def __init__(self) -> None:
        super().__init__(reply)
        self.counted: list[str] = []

    async def count_tokens(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> RequestUsage:
        self.counted.append('step' if DBOS.step_status is not None else 'workflow')
        return RequestUsage(input_tokens=TOKENS_PER_MESSAGE * len(messages))


def _workflow(form: str, name: str, model: CountingModel) -> Callable[..., Any]:
    """A workflow running the agent with counting on; it returns the output, or the exceeded limit's message."""
    if form == 'wrapper':
        durable: Any = DBOSAgent(Agent(model, name=name))
    else:
        durable = Agent(model, name=name, capabilities=[DBOSDurability()])

    async def run(limit: int | None) -> str:
        limits = UsageLimits(count_tokens_before_request=True, input_tokens_limit=limit)
        try:
            return (await durable.run('hi', usage_limits=limits)).output
        except UsageLimitExceeded as error:
            return f'limit: {error}'

    return DBOS.workflow(name=f'{name}.counting')(run)


@pytest.mark.parametrize('form', ['wrapper', 'capability'])
async def test_the_count_is_a_step_before_the_request_and_not_repeated(
    agent_name: str, dbos_launch: Callable[[], None], form: str
) -> None:
    model = CountingModel()
    workflow = _workflow(form, agent_name, model)
    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        assert await workflow(None) == '1 messages'

    assert model.counted == ['step']
    steps = await DBOS.list_workflow_steps_async(workflow_id)
    names = [step['function_name'] for step in steps]
    # The wrapper's `run` is a child workflow of the test's: its steps are recorded under it.
    if form == 'wrapper':
        child = steps[0]['child_workflow_id']
        assert child is not None
        workflow_id = child
        names = await workflow_step_names_async(child)
        steps = await DBOS.list_workflow_steps_async(child)
    assert names == [f'{agent_name}__model.count_tokens', f'{agent_name}__model.request']
    assert steps[0]['output'] == CountTokensResult(usage=RequestUsage(input_tokens=TOKENS_PER_MESSAGE))

    # Re-executed from after the count, the workflow takes the recorded count: the provider is not asked again.
    forked = await DBOS.fork_workflow_async(workflow_id, steps[0]['function_id'] + 1)
    assert (await forked.get_result()) is not None
    assert model.counted == ['step']


@pytest.mark.parametrize('form', ['wrapper', 'capability'])
async def test_a_count_over_the_limit_stops_the_run_before_the_request(
    agent_name: str, dbos_launch: Callable[[], None], form: str
) -> None:
    model = CountingModel()
    workflow = _workflow(form, agent_name, model)
    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        output = await workflow(5)

    assert output.startswith('limit: ')
    assert 'input_tokens_limit of 5' in output
    assert model.counted == ['step']
    names = await workflow_step_names_async(workflow_id)
    assert f'{agent_name}__model.request' not in names
