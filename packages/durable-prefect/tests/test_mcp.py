"""MCP servers, MCPToolset and FastMCPToolset: tool listing and tool calls are Prefect tasks."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from fastmcp import FastMCP
from pydantic_ai import Agent
from pydantic_ai import mcp as pydantic_ai_mcp
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.models.test import TestModel

from durable_prefect import PrefectAgent, PrefectMCPServer, PrefectMCPToolset, prefectify_toolset

from ._helpers import flow_runs_named, task_runs_of

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures('prefect_server')]

SERVER = Path(__file__).with_name('mcp_echo_server.py')


def _in_process_server() -> FastMCP[Any]:
    server: FastMCP[Any] = FastMCP('echo-in-process')

    @server.tool
    def shout(text: str) -> str:
        return text.upper()

    return server


async def _names(flow_name: str, expected: int) -> list[str]:
    [flow_run] = await flow_runs_named(flow_name)
    return [run.name.rsplit('-', 1)[0] for run in await task_runs_of([flow_run.id], expected=expected)]


EXPECTED = [
    'List MCP Tools: echo',
    'Model Request: test',
    'Call MCP Tool: shout',
    'List MCP Tools: echo',
    'Model Request: test',
]


@pytest.mark.filterwarnings('ignore::DeprecationWarning')
async def test_mcp_server_listing_and_calls_are_tasks() -> None:
    # The legacy (deprecated) `MCPServer` classes are still supported.
    server_class: Any = pydantic_ai_mcp.MCPServerStdio  # pyright: ignore[reportDeprecated]
    server = server_class(sys.executable, [str(SERVER)], env=dict(os.environ), id='echo')
    prefect_agent = PrefectAgent(Agent(TestModel(), name='mcp-stdio', toolsets=[server]))
    assert isinstance(prefectify_toolset(server, {}, {}, {}), PrefectMCPServer)
    async with prefect_agent:
        result = await prefect_agent.run('shout')
    assert result.output == '{"shout":"A"}'
    assert await _names('mcp-stdio Run', expected=5) == EXPECTED


async def test_mcp_toolset_is_wrapped_too() -> None:
    toolset: MCPToolset[None] = MCPToolset(_in_process_server(), id='echo')
    prefect_agent = PrefectAgent(
        Agent(TestModel(), name='mcp-toolset', toolsets=[toolset]), mcp_task_config={'retries': 1}
    )
    assert isinstance(prefectify_toolset(toolset, {}, {}, {}), PrefectMCPToolset)
    result = await prefect_agent.run('shout')
    assert result.output == '{"shout":"A"}'
    assert await _names('mcp-toolset Run', expected=5) == EXPECTED


@pytest.mark.filterwarnings('ignore::DeprecationWarning')
async def test_fastmcp_toolset_is_wrapped_too() -> None:
    from pydantic_ai.toolsets import fastmcp

    toolset: Any = fastmcp.FastMCPToolset(_in_process_server(), id='echo')  # pyright: ignore[reportDeprecated]
    assert isinstance(prefectify_toolset(toolset, {}, {}, {}), PrefectMCPToolset)
    prefect_agent = PrefectAgent(Agent(TestModel(), name='fastmcp-toolset', toolsets=[toolset]))
    result = await prefect_agent.run('shout')
    assert result.output == '{"shout":"A"}'
    assert await _names('fastmcp-toolset Run', expected=5) == EXPECTED
