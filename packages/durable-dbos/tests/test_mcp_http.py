"""MCP servers over streamable HTTP (a real FastMCP server in a subprocess): each MCP step has its own session.

The run used to connect when it entered its toolsets, in workflow code, and keep that session for all of its steps.
A server restarted between two steps then failed every later step (`McpError: Session terminated`), and against a
replayed recording of the reference's traffic (one session per step) the client waited forever for a reply that
belonged to another session: the `FastMCPToolset` hang of pydantic-ai's own DBOS suite.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from dbos import DBOS, SetWorkflowID
from pydantic_ai import Agent
from pydantic_ai.agent import AgentRunResult
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.toolsets import AbstractToolset

from durable_dbos import DBOSAgent
from durable_dbos.testing import workflow_step_names_async
from durable_kernel import PYDANTIC_AI_2

from .handler_app import Deps, step_handler
from .helpers import call, respond, scripted_model

# A hang fails the test instead of the suite: generous, for a loaded 2-core machine (a run takes seconds).
pytestmark = [pytest.mark.anyio, pytest.mark.timeout(300)]

SERVER = str(Path(__file__).with_name('mcp_server.py'))
# Waits of the MCP client: for the session to start, and for each reply (the default has no limit).
CLIENT_TIMEOUT = 60
# `FastMCPToolset` is a 1.107 class (pydantic-ai 2.x removed it); `MCPToolset` on the same server runs on both lines.
KINDS = [
    pytest.param(
        'FastMCPToolset',
        marks=pytest.mark.skipif(PYDANTIC_AI_2, reason='removed in pydantic-ai 2.x; `MCPToolset` is tested there'),
    ),
    'MCPToolset',
]


@dataclass
class HttpServer:
    """The test MCP server on 127.0.0.1:`port`, run by `python mcp_server.py http PORT`."""

    port: int
    call_log: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.port}/mcp'

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, SERVER, 'http', str(self.port)],
            env={**os.environ, 'MCP_SERVER_CALL_LOG': str(self.call_log)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 120  # starting Python and FastMCP takes seconds on a loaded machine
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = self.process.stderr.read().decode() if self.process.stderr else ''
                raise RuntimeError(f'the MCP server exited with {self.process.returncode}: {stderr}')
            try:
                socket.create_connection(('127.0.0.1', self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f'the MCP server did not listen on port {self.port} within 120 s')

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=60)
            if self.process.stderr:
                self.process.stderr.close()
            self.process = None

    def calls(self) -> list[str]:
        return self.call_log.read_text().splitlines() if self.call_log.exists() else []


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[HttpServer]:
    """A server process of this test, killed by its PID at the end (other MCP servers may run on the machine)."""
    server = HttpServer(free_port(), tmp_path / 'server-calls.log')
    server.start()
    try:
        yield server
    finally:
        server.stop()


def make_toolset(kind: str, url: str) -> AbstractToolset[Any]:
    from fastmcp import Client

    client: Client[Any] = Client(url, timeout=CLIENT_TIMEOUT, init_timeout=CLIENT_TIMEOUT)
    if kind == 'MCPToolset':
        from pydantic_ai.mcp import MCPToolset

        return MCPToolset(client, id='calc')
    from pydantic_ai.toolsets.fastmcp import FastMCPToolset  # pyright: ignore[reportDeprecated]

    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        return FastMCPToolset(client, id='calc')  # pyright: ignore[reportDeprecated]


@pytest.mark.parametrize('kind', KINDS)
async def test_a_server_restart_between_steps_does_not_break_the_run(
    kind: str, agent_name: str, http_server: HttpServer, dbos_launch: Callable[[], None]
) -> None:
    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if not any(isinstance(message, ModelResponse) for message in messages):
            # Between the listing step and the call step: a session the run held would be gone now.
            http_server.stop()
            http_server.start()
            return respond(call('add', {'a': 1, 'b': 2}))
        return respond('done')

    agent = Agent(FunctionModel(answer), name=agent_name, toolsets=[make_toolset(kind, http_server.url)])
    dbos_agent = DBOSAgent(agent)
    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        result = await dbos_agent.run('go')

    assert result.output == 'done'
    assert [p.content for m in result.all_messages() for p in m.parts if isinstance(p, ToolReturnPart)] == [3]
    prefix = f'{agent_name}__mcp_server__calc'
    assert await workflow_step_names_async(workflow_id) == [
        f'{prefix}.get_tools',
        f'{agent_name}__model.request',
        f'{prefix}.call_tool',
        *([f'{prefix}.get_tools'] if kind == 'FastMCPToolset' else []),  # it has no `cache_tools`
        f'{agent_name}__model.request',
    ]


@pytest.mark.parametrize('kind', KINDS)
async def test_mcp_calls_are_steps_with_a_step_handler_and_a_fork_does_not_repeat_them(
    kind: str, agent_name: str, tmp_path: Path, http_server: HttpServer, dbos_launch: Callable[[], None]
) -> None:
    """A handler decorated with `@DBOS.step()` gets the events in workflow code: the MCP calls stay steps."""
    model = scripted_model(
        respond(call('add', {'a': 1, 'b': 2}, 'c1'), call('add', {'a': 3, 'b': 4}, 'c2')), respond('done')
    )
    agent = Agent(model, name=agent_name, deps_type=Deps, toolsets=[make_toolset(kind, http_server.url)])
    dbos_agent = DBOSAgent(agent, event_stream_handler=step_handler)
    dbos_launch()
    deps = {'log': str(tmp_path / 'events.log')}
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        assert (await dbos_agent.run('go', deps=deps)).output == 'done'
    assert sorted(http_server.calls()) == ['add 1 2', 'add 3 4']

    prefix = f'{agent_name}__mcp_server__calc'
    expected = [
        f'{prefix}.get_tools',
        f'{agent_name}__model.request_stream',
        'step_handler',  # the two call events, one step each
        'step_handler',
        f'{prefix}.call_tool',
        f'{prefix}.call_tool',
        'step_handler',  # the two result events
        'step_handler',
        *([f'{prefix}.get_tools'] if kind == 'FastMCPToolset' else []),
        f'{agent_name}__model.request_stream',
    ]
    steps = await DBOS.list_workflow_steps_async(workflow_id)
    assert [step['function_name'] for step in steps] == expected

    # Replayed up to the last model request: the recorded MCP calls are not made again.
    last_request = steps[-1]['function_id']
    forked = await DBOS.fork_workflow_async(workflow_id, last_request)
    forked_result = cast(AgentRunResult[str], await forked.get_result())
    assert forked_result.output == 'done'
    assert await workflow_step_names_async(forked.workflow_id) == expected
    assert sorted(http_server.calls()) == ['add 1 2', 'add 3 4']
