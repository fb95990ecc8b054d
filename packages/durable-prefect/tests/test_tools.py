"""Tool tasks: configs (defaults, per tool, no task), run-time toolsets, dynamic toolsets, control flow as data."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic_ai import Agent, RunContext
from pydantic_ai.capabilities import Toolset
from pydantic_ai.exceptions import ApprovalRequired, CallDeferred, ModelRetry
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.tools import DeferredToolRequests, DeferredToolResults, ToolApproved
from pydantic_ai.toolsets import FunctionToolset

from durable_prefect import PrefectAgent

from ._helpers import flow_runs_named, task_runs_of

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures('prefect_server')]


def _base_names(runs: list[Any]) -> list[str]:
    return [run.name.rsplit('-', 1)[0] for run in runs]


async def _task_runs(flow_name: str, expected: int) -> list[Any]:
    [flow_run] = await flow_runs_named(flow_name)
    return await task_runs_of([flow_run.id], expected=expected)


def _flaky_tool(failures: int, calls: list[str]) -> Any:
    def flaky() -> str:
        calls.append('flaky')
        if len(calls) <= failures:
            raise RuntimeError('tool outage')
        return 'ok'

    return flaky


async def test_tool_task_config_applies_to_tools_not_named_in_by_name() -> None:
    calls: list[str] = []
    agent = Agent(TestModel(), name='tool-defaults', tools=[_flaky_tool(2, calls)])
    prefect_agent = PrefectAgent(
        agent,
        tool_task_config={'retries': 2, 'retry_delay_seconds': [0, 0]},
        tool_task_config_by_name={'other': {'retries': 0}},
    )
    assert (await prefect_agent.run('go')).output == '{"flaky":"ok"}'
    assert calls == ['flaky'] * 3


async def test_tool_task_config_by_name_overrides_the_default() -> None:
    calls: list[str] = []
    agent = Agent(TestModel(), name='tool-by-name', tools=[_flaky_tool(1, calls)])
    prefect_agent = PrefectAgent(
        agent,
        tool_task_config={'retries': 3, 'retry_delay_seconds': 0},
        tool_task_config_by_name={'flaky': {'retries': 0}},
    )
    with pytest.raises(RuntimeError, match='tool outage'):
        await prefect_agent.run('go')
    assert calls == ['flaky']


async def test_tool_with_config_none_runs_without_a_task() -> None:
    agent = Agent(TestModel(), name='untasked')

    @agent.tool_plain
    def inline() -> str:
        return 'inline'

    @agent.tool_plain
    def tasked() -> str:
        return 'tasked'

    prefect_agent = PrefectAgent(agent, tool_task_config_by_name={'inline': None})
    assert (await prefect_agent.run('go')).output == '{"inline":"inline","tasked":"tasked"}'
    names = _base_names(await _task_runs('untasked Run', expected=3))
    assert sorted(names) == ['Call Tool: tasked', 'Model Request: test', 'Model Request: test']


async def test_run_time_toolsets_are_honoured_and_run_in_tasks() -> None:
    def extra(x: int) -> int:
        return x * 10

    prefect_agent = PrefectAgent(Agent(TestModel(), name='runtime-toolsets'))
    result = await prefect_agent.run('go', toolsets=[FunctionToolset([extra])])
    assert result.output == '{"extra":0}'
    names = _base_names(await _task_runs('runtime-toolsets Run', expected=3))
    assert names == ['Model Request: test', 'Call Tool: extra', 'Model Request: test']


async def test_dynamic_toolsets_are_wrapped() -> None:
    agent = Agent(TestModel(), name='dynamic', deps_type=str)

    @agent.toolset
    def per_tenant(ctx: RunContext[str]) -> FunctionToolset[str]:
        def tenant_tool() -> str:
            return f'tenant {ctx.deps}'

        return FunctionToolset([tenant_tool])

    result = await PrefectAgent(agent).run('go', deps='acme')
    assert result.output == '{"tenant_tool":"tenant acme"}'
    names = _base_names(await _task_runs('dynamic Run', expected=3))
    assert names == ['Model Request: test', 'Call Tool: tenant_tool', 'Model Request: test']


def _call_then_answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    last = messages[-1]
    # A `ModelRetry` reaches the model as a `RetryPromptPart` on 1.107, as a `ToolReturnPart` with the `'retried'`
    # outcome on 2.x: either way it is not the tool's result.
    parts = last.parts if isinstance(last, ModelRequest) else ()
    returns = [p for p in parts if isinstance(p, ToolReturnPart) and p.outcome == 'success']
    if returns:
        return ModelResponse(parts=[TextPart(f'tool said {returns[0].content}')])
    return ModelResponse(parts=[ToolCallPart('guarded', {}, tool_call_id='call-1')])


async def test_model_retry_crosses_the_task_as_data_and_is_not_retried_by_prefect() -> None:
    calls: list[int] = []
    agent = Agent(FunctionModel(_call_then_answer), name='model-retry')

    @agent.tool
    def guarded(ctx: RunContext[None]) -> str:
        calls.append(ctx.retry)
        if ctx.retry == 0:
            raise ModelRetry('try again')
        return 'fine'

    prefect_agent = PrefectAgent(agent, tool_task_config={'retries': 3, 'retry_delay_seconds': 0})
    assert (await prefect_agent.run('go')).output == 'tool said fine'
    assert calls == [0, 1]  # Prefect never retried the task for the ModelRetry
    runs = await _task_runs('model-retry Run', expected=4)
    assert {run.state_name for run in runs} == {'Completed'}


async def test_approval_required_and_call_deferred_cross_the_task_as_data() -> None:
    calls: list[str] = []
    agent = Agent(FunctionModel(_call_then_answer), name='deferred', output_type=[str, DeferredToolRequests])

    @agent.tool
    def guarded(ctx: RunContext[None]) -> str:
        calls.append('approved' if ctx.tool_call_approved else 'asked')
        if not ctx.tool_call_approved:
            raise ApprovalRequired(metadata={'why': 'money'})
        return 'paid'

    prefect_agent = PrefectAgent(agent, tool_task_config={'retries': 2, 'retry_delay_seconds': 0})
    first = await prefect_agent.run('pay')
    assert isinstance(first.output, DeferredToolRequests)
    assert [call.tool_call_id for call in first.output.approvals] == ['call-1']
    assert first.output.metadata == {'call-1': {'why': 'money'}}
    second = await prefect_agent.run(
        message_history=first.all_messages(),
        deferred_tool_results=DeferredToolResults(approvals={'call-1': ToolApproved()}),
    )
    assert second.output == 'tool said paid'
    assert calls == ['asked', 'approved']


async def test_call_deferred_crosses_the_task_as_data() -> None:
    def ask(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[ToolCallPart('later', {}, tool_call_id='call-9')])

    agent = Agent(FunctionModel(ask), name='call-deferred', output_type=[str, DeferredToolRequests])
    calls: list[str] = []

    @agent.tool_plain
    def later() -> str:
        calls.append('later')
        raise CallDeferred(metadata={'job': 7})

    result = await PrefectAgent(agent, tool_task_config={'retries': 2, 'retry_delay_seconds': 0}).run('go')
    assert isinstance(result.output, DeferredToolRequests)
    assert [call.tool_call_id for call in result.output.calls] == ['call-9']
    assert result.output.metadata == {'call-9': {'job': 7}}
    assert calls == ['later']


async def test_a_capability_toolset_runs_its_calls_in_tasks() -> None:
    calls: list[str] = []

    def weather() -> str:
        calls.append('weather')
        return 'sunny'

    agent = Agent(TestModel(), name='capability-toolset', capabilities=[Toolset(FunctionToolset([weather]))])
    assert (await PrefectAgent(agent).run('go')).output == '{"weather":"sunny"}'
    assert calls == ['weather']
    names = _base_names(await _task_runs('capability-toolset Run', expected=3))
    assert names == ['Model Request: test', 'Call Tool: weather', 'Model Request: test']


async def test_a_result_that_cannot_be_persisted_does_not_fail_the_run() -> None:
    """Prefect logs a task result it cannot serialize and goes on (uncached); storing results before `Completed`
    keeps it so. The final model response holds a lock (not picklable) in its provider details."""
    import threading

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart('locked')], provider_details={'lock': threading.Lock()})

    agent = Agent(FunctionModel(respond), name='unpicklable-result')
    assert (await PrefectAgent(agent).run('go')).output == 'locked'
