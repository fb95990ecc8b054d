"""Counting tokens ahead of a request (`UsageLimits(count_tokens_before_request=True)`) inside a Prefect flow.

Counting is a request to the provider, so inside a flow it is its own task, `Count Tokens: {model}` (pydantic-ai 2.78's
name), before the request's task, in both forms. The task is cached like the request's: a retried flow run does not
count again.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from prefect import flow
from prefect.context import FlowRunContext, TaskRunContext
from pydantic_ai import Agent
from pydantic_ai.exceptions import UsageLimitExceeded
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.usage import RequestUsage, UsageLimits

from durable_prefect import PrefectAgent, PrefectDurability

from ._helpers import flow_runs_named, task_runs_of

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures('prefect_server')]

TOKENS_PER_MESSAGE = 10


class CountingModel(FunctionModel):
    """A model whose provider counts a request's tokens (ten per message), recording where each count ran."""

    def __init__(self) -> None:
        super().__init__(self.reply, model_name='counting')
        self.counted: list[str] = []
        self.requests = 0

    def reply(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.requests += 1
        return ModelResponse(parts=[TextPart(f'{len(messages)} messages')])

    async def count_tokens(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> RequestUsage:
        self.counted.append('task' if TaskRunContext.get() is not None else 'flow')
        return RequestUsage(input_tokens=TOKENS_PER_MESSAGE * len(messages))


def _agent(form: str, name: str, model: CountingModel) -> Any:
    if form == 'wrapper':
        return PrefectAgent(Agent(model, name=name))
    return Agent(model, name=name, capabilities=[PrefectDurability()])


async def _task_names(flow_names: list[str], expected: int) -> list[str]:
    ids = [run.id for name in flow_names for run in await flow_runs_named(name)]
    names = [run.name.rsplit('-', 1)[0] for run in await task_runs_of(ids, expected=expected)]
    # The wrapper's flow is a subflow of the user's: its own run shows among the user flow's task runs.
    return [name for name in names if name not in flow_names]


@pytest.mark.parametrize('form', ['wrapper', 'capability'])
async def test_the_count_is_a_task_before_the_request_that_a_retried_flow_run_reuses(form: str) -> None:
    model = CountingModel()
    name = f'count-{form}-{uuid.uuid4().hex[:6]}'
    agent = _agent(form, name, model)
    attempts: list[Any] = []

    @flow(name=f'{name}-user', retries=1, retry_delay_seconds=0)
    async def user_flow() -> str:
        context = FlowRunContext.get()
        attempts.append(context and context.flow_run and context.flow_run.id)
        result = await agent.run('hi', usage_limits=UsageLimits(count_tokens_before_request=True))
        if len(attempts) == 1:
            raise RuntimeError('the flow fails after the agent run')
        return result.output

    assert await user_flow() == '1 messages'
    assert len(attempts) == 2
    # The second attempt took the count and the response from the first attempt's tasks.
    assert model.counted == ['task']
    assert model.requests == 1
    names = await _task_names([f'{name}-user', f'{name} Run'], expected=4)
    assert names == ['Count Tokens: counting', 'Model Request: counting'] * 2


@pytest.mark.parametrize('form', ['wrapper', 'capability'])
async def test_a_count_over_the_limit_stops_the_run_before_the_request(form: str) -> None:
    model = CountingModel()
    name = f'count-limit-{form}-{uuid.uuid4().hex[:6]}'
    agent = _agent(form, name, model)

    @flow(name=f'{name}-user')
    async def user_flow() -> str:
        limits = UsageLimits(count_tokens_before_request=True, input_tokens_limit=5)
        try:
            return (await agent.run('hi', usage_limits=limits)).output
        except UsageLimitExceeded as error:
            return f'limit: {error}'

    output = await user_flow()
    assert output.startswith('limit: ')
    assert 'input_tokens_limit of 5' in output
    assert model.counted == ['task']
    assert model.requests == 0
    assert await _task_names([f'{name}-user', f'{name} Run'], expected=1) == ['Count Tokens: counting']


@pytest.mark.parametrize('form', ['wrapper', 'capability'])
async def test_the_count_is_keyed_by_the_runs_deps_like_the_request(form: str) -> None:
    # Two runs in one flow run, the same messages, other deps: each counts (as each requests); a count keyed without
    # the run would hand one tenant's count to the other.
    model = CountingModel()
    name = f'count-deps-{form}-{uuid.uuid4().hex[:6]}'
    agent = _agent(form, name, model)

    @flow(name=f'{name}-user')
    async def user_flow() -> list[str]:
        limits = UsageLimits(count_tokens_before_request=True)
        return [(await agent.run('hi', deps=tenant, usage_limits=limits)).output for tenant in ('acme', 'globex')]

    assert await user_flow() == ['1 messages', '1 messages']
    assert model.counted == ['task', 'task']
    assert model.requests == 2
