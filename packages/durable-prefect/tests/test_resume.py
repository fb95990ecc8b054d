"""A retried flow run reuses its completed model and tool tasks; only the failed work runs again."""

from __future__ import annotations

import pytest
from prefect import flow
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from durable_prefect import PrefectAgent

from ._helpers import flow_runs_named, task_runs_of

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures('prefect_server')]


def _has_tool_return(messages: list[ModelMessage]) -> bool:
    last = messages[-1]
    return isinstance(last, ModelRequest) and any(isinstance(part, ToolReturnPart) for part in last.parts)


class FlakyModel:
    """Asks for two tool calls, then fails its second request once before answering."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.failures_left = 1

    def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if not _has_tool_return(messages):
            self.requests.append('first')
            return ModelResponse(
                parts=[
                    ToolCallPart('double', {'x': 2}, tool_call_id='call-1'),
                    ToolCallPart('double', {'x': 5}, tool_call_id='call-2'),
                ]
            )
        self.requests.append('second')
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError('transient model outage')
        return ModelResponse(parts=[TextPart('done')])


def flaky_agent(name: str, model: FlakyModel, tool_calls: list[int]) -> Agent[None, str]:
    agent = Agent(FunctionModel(model.respond), name=name)

    @agent.tool
    def double(ctx: RunContext[None], x: int) -> int:
        tool_calls.append(x)
        return 2 * x

    return agent


async def test_flow_retry_reuses_completed_model_request_and_tool_calls() -> None:
    model, tool_calls = FlakyModel(), list[int]()
    prefect_agent = PrefectAgent(flaky_agent('resumed', model, tool_calls))

    @flow(retries=1, retry_delay_seconds=0)
    async def parent() -> str:
        return (await prefect_agent.run('go')).output

    assert await parent() == 'done'
    # The first model request and both tool calls ran once; the failed second request ran again.
    assert model.requests == ['first', 'second', 'second']
    assert sorted(tool_calls) == [2, 5]

    failed, retried = sorted(await flow_runs_named('resumed Run'), key=lambda run: run.expected_start_time or 0)
    first_attempt = await task_runs_of([failed.id], expected=4)
    second_attempt = await task_runs_of([retried.id], expected=4)
    assert [run.state_name for run in first_attempt] == ['Completed', 'Completed', 'Completed', 'Failed']
    assert [run.state_name for run in second_attempt] == ['Cached', 'Cached', 'Cached', 'Completed']


async def test_task_retries_rerun_only_the_failed_model_request() -> None:
    model, tool_calls = FlakyModel(), list[int]()
    prefect_agent = PrefectAgent(
        flaky_agent('task-retried', model, tool_calls), model_task_config={'retries': 1, 'retry_delay_seconds': 0}
    )
    result = await prefect_agent.run('go')
    assert result.output == 'done'
    assert model.requests == ['first', 'second', 'second']
    assert sorted(tool_calls) == [2, 5]


async def test_without_retries_the_failure_reaches_the_caller() -> None:
    model, tool_calls = FlakyModel(), list[int]()
    prefect_agent = PrefectAgent(flaky_agent('not-retried', model, tool_calls))
    with pytest.raises(RuntimeError, match='transient model outage'):
        await prefect_agent.run('go')
    assert model.requests == ['first', 'second']
