"""A flow run that pydantic-ai 1.107's own `PrefectAgent` started, re-run on ours, reuses the tool calls it recorded.

Exactly where the reference's own key for the call names a stored result: the same tool, arguments and call id in the
same abandoned agent run. A compatibility test: it runs the reference (pydantic-ai 1.107's `durable_exec.prefect`).
The crash-and-switch version of this, with killed processes and committed runs, is
`tests-integration/test_upgrade.py::test_prefect_run_started_on_the_reference_finishes_on_ours`.
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass, field
from typing import Any

import pytest
from prefect import flow
from prefect.context import FlowRunContext
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.toolsets import FunctionToolset

from durable_kernel import PYDANTIC_AI_2
from durable_prefect import PrefectAgent, UnfinishedForeignAgentRunWarning

pytestmark = [
    pytest.mark.usefixtures('prefect_server'),
    pytest.mark.skipif(
        PYDANTIC_AI_2, reason="pydantic-ai 1.107's PrefectAgent is the subject (2.x's keys its tasks otherwise)"
    ),
]


def test_the_reference_task_sources_are_read_as_prefect_reads_them() -> None:
    # Prefect hashes `inspect.getsource` of the task's function into the key (`TASK_SOURCE`); ours reads the same text
    # from the reference's file without importing it.
    from pydantic_ai.durable_exec.prefect._function_toolset import PrefectFunctionToolset
    from pydantic_ai.durable_exec.prefect._mcp_server import PrefectMCPServer
    from pydantic_ai.mcp import MCPServerStdio  # pyright: ignore[reportDeprecated]  # 1.107's MCP server classes

    from durable_prefect._reference_results import (
        _reference_task_source,  # pyright: ignore[reportPrivateUsage]
    )

    function_toolset: Any = PrefectFunctionToolset(FunctionToolset(id='tools'), task_config={}, tool_task_config={})
    mcp_server: Any = PrefectMCPServer(
        MCPServerStdio('python', args=[], id='mcp'),  # pyright: ignore[reportDeprecated]
        task_config={},
    )
    function_source = _reference_task_source('_function_toolset.py', 'PrefectFunctionToolset', '_call_tool_task')
    mcp_source = _reference_task_source('_mcp_server.py', 'PrefectMCPServer', '_call_tool_task')
    assert function_source == inspect.getsource(function_toolset._call_tool_task.fn)
    assert mcp_source == inspect.getsource(mcp_server._call_tool_task.fn)
    assert function_source != mcp_source


@dataclass
class _Scenario:
    """Which attempt of the flow run is running, what the re-run's model asks of tool b, which tool bodies ran."""

    b_on_rerun: int = 3
    attempt: int = 1
    tool_bodies: list[tuple[int, str]] = field(default_factory=list[tuple[int, str]])
    output: str = ''


# Module-level, like a user's tools: the reference's key pickles the tool's argument validator, which refers to the
# function (by name when it is importable; a closure would be pickled with its changing state, and match nothing).
_scenario = _Scenario()


def _model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    returned = [part for message in messages for part in message.parts if isinstance(part, ToolReturnPart)]
    if not returned:
        b = 3 if _scenario.attempt == 1 else _scenario.b_on_rerun
        return ModelResponse(
            parts=[
                ToolCallPart('crunch', {'label': 'a', 'n': 2}, tool_call_id='call-a'),
                ToolCallPart('crunch', {'label': 'b', 'n': b}, tool_call_id='call-b'),
            ]
        )
    if len(returned) == 2:
        return ModelResponse(parts=[ToolCallPart('crunch', {'label': 'c', 'n': 5}, tool_call_id='call-c')])
    return ModelResponse(parts=[TextPart(' '.join(str(part.content) for part in returned))])


def crunch(label: str, n: int) -> int:
    """The scenario's tool: dies in call c on the reference's attempt."""
    _scenario.tool_bodies.append((_scenario.attempt, label))
    if label == 'c' and _scenario.attempt == 1:
        raise RuntimeError('the worker is lost in tool c')
    return n * 7


def _rerun_on_ours(b_on_rerun: int, name: str) -> _Scenario:
    """A flow run whose first attempt runs the agent on the reference and dies in tool c; the retry runs it on ours."""
    global _scenario
    from pydantic_ai.durable_exec.prefect import PrefectAgent as ReferencePrefectAgent

    _scenario = scenario = _Scenario(b_on_rerun=b_on_rerun)
    agent = Agent(FunctionModel(_model, model_name='scenario'), name=name, tools=[crunch])
    reference: Any = ReferencePrefectAgent(agent)
    ours = PrefectAgent(agent)

    @flow(retries=1, persist_result=True)
    async def outer() -> str:
        context = FlowRunContext.get()
        assert context is not None
        assert context.flow_run is not None
        scenario.attempt = context.flow_run.run_count
        if scenario.attempt == 1:
            await reference.run('go')
        return (await ours.run('go')).output

    scenario.output = asyncio.run(outer())
    return scenario


def test_a_rerun_on_ours_reuses_the_tool_calls_the_reference_recorded() -> None:
    with pytest.warns(UnfinishedForeignAgentRunWarning, match='unfinished agent run'):
        scenario = _rerun_on_ours(3, 'reference-reused')
    assert scenario.output == '14 21 35'
    # Tools a and b ran once, on the reference; tool c, which died there, runs again on ours.
    assert sorted(scenario.tool_bodies) == [(1, 'a'), (1, 'b'), (1, 'c'), (2, 'c')]


def test_a_call_that_differs_from_the_recorded_one_runs_again() -> None:
    # On the re-run the model asks for tool b with other arguments: the reference's key for that call names nothing
    # (its arguments are in it), so b runs again; a, the same call as recorded, does not.
    with pytest.warns(UnfinishedForeignAgentRunWarning):
        scenario = _rerun_on_ours(4, 'reference-differs')
    assert scenario.output == '14 28 35'
    assert sorted(scenario.tool_bodies) == [(1, 'a'), (1, 'b'), (1, 'c'), (2, 'b'), (2, 'c')]
