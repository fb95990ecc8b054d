from __future__ import annotations

import sys
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dbos import DBOS, SetWorkflowID
from pydantic_ai import Agent
from pydantic_ai.mcp import MCPServerStdio, MCPToolset  # pyright: ignore[reportDeprecated]
from pydantic_ai.messages import ModelMessage, ModelResponse, RetryPromptPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.toolsets import AbstractToolset

from durable_dbos import DBOSAgent, DBOSMCPServer
from durable_dbos.testing import workflow_step_names_async

from .helpers import call, respond

pytestmark = pytest.mark.anyio

SERVER = str(Path(__file__).with_name('mcp_server.py'))


def make_server(kind: str, *, cache_tools: bool = True) -> AbstractToolset[Any]:
    # `MCPServerStdio` and `FastMCPToolset` are deprecated in pydantic-ai 1.x but still supported (and wrapped).
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        return _make_server(kind, cache_tools=cache_tools)


def _make_server(kind: str, *, cache_tools: bool) -> AbstractToolset[Any]:
    if kind == 'MCPServerStdio':
        return MCPServerStdio(  # pyright: ignore[reportDeprecated]
            sys.executable, [SERVER], id='calc', include_instructions=True, cache_tools=cache_tools
        )
    from fastmcp.client.transports import StdioTransport

    transport = StdioTransport(command=sys.executable, args=[SERVER])
    if kind == 'MCPToolset':
        return MCPToolset(transport, id='calc', include_instructions=True, cache_tools=cache_tools)
    from pydantic_ai.toolsets.fastmcp import FastMCPToolset  # pyright: ignore[reportDeprecated]

    return FastMCPToolset(transport, id='calc', include_instructions=True)  # pyright: ignore[reportDeprecated]


class RecordingModel:
    """Calls `add` then `divide` by zero, then answers; records the instructions each request saw."""

    def __init__(self) -> None:
        self.instructions: list[str | None] = []
        self.model = FunctionModel(self.answer)

    def answer(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.instructions.append(info.instructions)
        turn = sum(isinstance(message, ModelResponse) for message in messages)
        if turn == 0:
            return respond(call('add', {'a': 1, 'b': 2}), call('divide', {'a': 1, 'b': 0}, call_id='c2'))
        return respond('done')


@pytest.mark.parametrize('kind', ['MCPServerStdio', 'MCPToolset', 'FastMCPToolset'])
async def test_mcp_listing_instructions_and_calls_are_steps(
    kind: str, agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    recording = RecordingModel()
    dbos_agent = DBOSAgent(Agent(recording.model, name=agent_name, toolsets=[make_server(kind)]))
    dbos_launch()

    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        result = await dbos_agent.run('go')

    assert result.output == 'done'
    parts = [p for m in result.all_messages() for p in m.parts]
    assert [p.content for p in parts if isinstance(p, ToolReturnPart)] == [3]
    # The tool error became `ModelRetry` in the step and crossed it as data.
    assert [p.tool_name for p in parts if isinstance(p, RetryPromptPart)] == ['divide']
    assert recording.instructions == ['Use `add` to add numbers.'] * 2
    prefix = f'{agent_name}__mcp_server__calc'
    steps = await DBOS.list_workflow_steps_async(workflow_id)
    assert [s['function_name'] for s in steps] == [
        f'{prefix}.get_tools',
        f'{prefix}.get_instructions',
        f'{agent_name}__model.request',
        f'{prefix}.call_tool',
        f'{prefix}.call_tool',
        *([f'{prefix}.get_tools'] if kind == 'FastMCPToolset' else []),  # it has no `cache_tools`
        *([f'{prefix}.get_instructions'] if kind == 'FastMCPToolset' else []),
        f'{agent_name}__model.request',
    ]
    assert [type(s['output']).__name__ for s in steps if s['function_name'].endswith('call_tool')] == [
        'ToolReturned',
        'ToolRetryRequested',
    ]


async def test_tool_definitions_are_cached_per_run_not_per_process(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    """Each run lists the tools in its own step: the step sequence never depends on an earlier run."""
    dbos_agent = DBOSAgent(Agent(RecordingModel().model, name=agent_name, toolsets=[make_server('MCPServerStdio')]))
    dbos_launch()
    for _ in range(2):
        workflow_id = str(uuid.uuid4())
        with SetWorkflowID(workflow_id):
            await dbos_agent.run('go')
        names = await workflow_step_names_async(workflow_id)
        assert names.count(f'{agent_name}__mcp_server__calc.get_tools') == 1


async def test_cache_tools_false_lists_tools_for_every_request(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    server = make_server('MCPServerStdio', cache_tools=False)
    dbos_agent = DBOSAgent(Agent(RecordingModel().model, name=agent_name, toolsets=[server]))
    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        await dbos_agent.run('go')
    names = await workflow_step_names_async(workflow_id)
    assert names.count(f'{agent_name}__mcp_server__calc.get_tools') == 2
    assert names.count(f'{agent_name}__mcp_server__calc.get_instructions') == 2


async def test_a_dbos_mcp_server_built_by_hand_keeps_its_prefix(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    server = DBOSMCPServer(
        make_server('MCPToolset'), step_name_prefix=f'{agent_name}_custom', step_config={'retries_allowed': False}
    )
    dbos_agent = DBOSAgent(Agent(RecordingModel().model, name=agent_name, toolsets=[server]))
    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        assert (await dbos_agent.run('go')).output == 'done'
    names = await workflow_step_names_async(workflow_id)
    assert names[:2] == [
        f'{agent_name}_custom__mcp_server__calc.get_tools',
        f'{agent_name}_custom__mcp_server__calc.get_instructions',
    ]
    assert names.count(f'{agent_name}_custom__mcp_server__calc.call_tool') == 2
