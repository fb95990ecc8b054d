"""MCPToolset (and pydantic-ai 1.107's MCP servers and FastMCPToolset): tool listing and tool calls are Prefect tasks."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from fastmcp import FastMCP
from fastmcp.client.transports import PythonStdioTransport
from pydantic_ai import Agent
from pydantic_ai import mcp as pydantic_ai_mcp
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.models.test import TestModel

from durable_kernel import PYDANTIC_AI_2
from durable_prefect import PrefectAgent, PrefectMCPServer, PrefectMCPToolset, prefectify_toolset

from ._helpers import flow_runs_named, task_runs_of

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures('prefect_server')]

SERVER = Path(__file__).with_name('mcp_echo_server.py')
STARTUP_TIMEOUT = 60.0
"""Seconds an MCP session may take to start: importing the MCP SDK takes seconds on a loaded 2-core machine, and even
an in-process session's start-up can outlast the clients' 5-second default there."""


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


only_on_1_107 = pytest.mark.skipif(
    PYDANTIC_AI_2, reason='pydantic-ai 2.x removed this class: its MCPToolset counterpart is tested instead'
)


@only_on_1_107
@pytest.mark.filterwarnings('ignore::DeprecationWarning')
async def test_mcp_server_listing_and_calls_are_tasks() -> None:
    # The legacy (deprecated) `MCPServer` classes are still supported.
    server_class: Any = pydantic_ai_mcp.MCPServerStdio  # pyright: ignore[reportDeprecated]
    server = server_class(sys.executable, [str(SERVER)], env=dict(os.environ), id='echo', timeout=STARTUP_TIMEOUT)
    prefect_agent = PrefectAgent(Agent(TestModel(), name='mcp-stdio', toolsets=[server]))
    assert isinstance(prefectify_toolset(server, {}, {}, {}), PrefectMCPServer)
    async with prefect_agent:
        result = await prefect_agent.run('shout')
    assert result.output == '{"shout":"A"}'
    assert await _names('mcp-stdio Run', expected=5) == EXPECTED


async def test_mcp_toolset_over_stdio_listing_and_calls_are_tasks() -> None:
    # The same stdio server as the `MCPServerStdio` test above, through `MCPToolset` (the only MCP class on 2.x).
    transport = PythonStdioTransport(SERVER, env=dict(os.environ), python_cmd=sys.executable)
    toolset: MCPToolset[None] = MCPToolset(transport, id='echo', init_timeout=STARTUP_TIMEOUT)
    assert isinstance(prefectify_toolset(toolset, {}, {}, {}), PrefectMCPToolset)
    prefect_agent = PrefectAgent(Agent(TestModel(), name='mcp-toolset-stdio', toolsets=[toolset]))
    async with prefect_agent:
        result = await prefect_agent.run('shout')
    assert result.output == '{"shout":"A"}'
    assert await _names('mcp-toolset-stdio Run', expected=5) == EXPECTED


async def test_prefect_mcp_server_wraps_an_mcp_toolset() -> None:
    # `PrefectMCPServer` stays public on both lines; on 2.x what it wraps is an `MCPToolset`.
    wrapped = PrefectMCPServer(
        MCPToolset(_in_process_server(), id='echo', init_timeout=STARTUP_TIMEOUT), task_config={'retries': 1}
    )
    assert prefectify_toolset(wrapped, {}, {}, {}) is wrapped  # already durable: not wrapped twice
    prefect_agent = PrefectAgent(Agent(TestModel(), name='prefect-mcp-server', toolsets=[wrapped]))
    result = await prefect_agent.run('shout')
    assert result.output == '{"shout":"A"}'
    assert await _names('prefect-mcp-server Run', expected=5) == EXPECTED


async def test_mcp_toolset_is_wrapped_too() -> None:
    toolset: MCPToolset[None] = MCPToolset(_in_process_server(), id='echo', init_timeout=STARTUP_TIMEOUT)
    prefect_agent = PrefectAgent(
        Agent(TestModel(), name='mcp-toolset', toolsets=[toolset]), mcp_task_config={'retries': 1}
    )
    assert isinstance(prefectify_toolset(toolset, {}, {}, {}), PrefectMCPToolset)
    result = await prefect_agent.run('shout')
    assert result.output == '{"shout":"A"}'
    assert await _names('mcp-toolset Run', expected=5) == EXPECTED


@only_on_1_107
@pytest.mark.filterwarnings('ignore::DeprecationWarning')
async def test_fastmcp_toolset_is_wrapped_too() -> None:
    # On 2.x, `MCPToolset` on this same in-process FastMCP server is `test_mcp_toolset_is_wrapped_too`.
    from fastmcp import Client
    from pydantic_ai.toolsets import fastmcp

    # The client `FastMCPToolset` would build for the server itself, with a start-up timeout.
    client = Client(_in_process_server(), init_timeout=STARTUP_TIMEOUT)
    toolset: Any = fastmcp.FastMCPToolset(client, id='echo')  # pyright: ignore[reportDeprecated]
    assert isinstance(prefectify_toolset(toolset, {}, {}, {}), PrefectMCPToolset)
    prefect_agent = PrefectAgent(Agent(TestModel(), name='fastmcp-toolset', toolsets=[toolset]))
    result = await prefect_agent.run('shout')
    assert result.output == '{"shout":"A"}'
    assert await _names('fastmcp-toolset Run', expected=5) == EXPECTED
