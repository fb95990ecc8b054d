# pyright: reportDeprecated=false
"""MCP toolsets over a local stdio server: listing, instructions and calls in activities, tool definitions cached per
run (so a replay on a fresh worker schedules the same activities).

`MCPToolset` (`modern`) is tested on both pydantic-ai lines; `MCPServerStdio` (`legacy`) and `FastMCPToolset` (`fast`)
only on 1.107, since 2.x removed them (a 2.x user reaches the same server through `MCPToolset`).
"""

from __future__ import annotations

import sys
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest
from core_helpers import WORKFLOW_TIMEOUT, scheduled_activities
from fastmcp import Client as FastMCPClient
from fastmcp.client.transports import StdioTransport
from pydantic_ai import Agent
from pydantic_ai.exceptions import UserError
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.toolsets import AbstractToolset
from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Replayer

from durable_kernel import PYDANTIC_AI_2
from durable_temporal import PydanticAIPlugin, TemporalAgent
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio

SERVER_SCRIPT = str(Path(__file__).parent / 'mcp_math_server.py')
with workflow.unsafe.sandbox_unrestricted():
    # The workflow sandbox re-imports this module; only the worker's copy ever starts the server.
    CALL_LOG = Path(tempfile.gettempdir()) / f'durable-temporal-mcp-{uuid.uuid4().hex}.log'
SEEN_INSTRUCTIONS: list[str | None] = []


def math_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    SEEN_INSTRUCTIONS.append(info.instructions)
    sums = [
        part.content
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]
    if len(sums) == 2:
        return ModelResponse(parts=[TextPart(f'sums: {sums}')])
    a, b = (1, 2) if not sums else (3, 4)
    return ModelResponse(parts=[ToolCallPart('add', {'a': a, 'b': b})])


def _transport() -> StdioTransport:
    return StdioTransport(command=sys.executable, args=[SERVER_SCRIPT, str(CALL_LOG)])


# Generous start-up timeouts: the server process is slow to start on a loaded 2-core machine.
TOOLSETS: dict[str, AbstractToolset[Any]] = {
    'modern': MCPToolset(_transport(), id='modern', include_instructions=True, init_timeout=60),
}
if not PYDANTIC_AI_2:
    from pydantic_ai.mcp import MCPServerStdio
    from pydantic_ai.toolsets.fastmcp import FastMCPToolset

    with warnings.catch_warnings():
        # Both legacy classes are deprecated in pydantic-ai 1.x, and still supported.
        warnings.simplefilter('ignore', DeprecationWarning)
        TOOLSETS['legacy'] = MCPServerStdio(
            sys.executable, args=[SERVER_SCRIPT, str(CALL_LOG)], id='legacy', include_instructions=True, timeout=60
        )
        TOOLSETS['fast'] = FastMCPToolset(
            FastMCPClient(_transport(), init_timeout=60), id='fast', include_instructions=True
        )

_REMOVED_IN_2 = pytest.mark.skipif(
    PYDANTIC_AI_2, reason='pydantic-ai 2.x removed this class; `modern` (MCPToolset on the same server) stands for it'
)
KINDS = [pytest.param('legacy', marks=_REMOVED_IN_2), 'modern', pytest.param('fast', marks=_REMOVED_IN_2)]


AGENTS = {
    kind: TemporalAgent(Agent(FunctionModel(math_model), name=f'mcp_{kind}', toolsets=[toolset]))
    for kind, toolset in TOOLSETS.items()
}


@workflow.defn
class McpWorkflow:
    @workflow.run
    async def run(self, kind: str) -> str:
        return (await AGENTS[kind].run('add things')).output


@pytest.mark.parametrize('kind', KINDS)
async def test_mcp_listing_instructions_and_calls_run_in_activities(kind: str, client: Client, task_queue: str) -> None:
    agent = AGENTS[kind]
    name = f'agent__mcp_{kind}__mcp_server__{kind}'
    SEEN_INSTRUCTIONS.clear()
    CALL_LOG.unlink(missing_ok=True)
    # Entered once in the worker process, so every activity reuses one server process instead of starting its own.
    async with TOOLSETS[kind], agent_worker(client, workflows=[McpWorkflow], agents=[agent], task_queue=task_queue):
        handles: list[WorkflowHandle[Any, Any]] = []
        for _ in range(2):
            handle = await client.start_workflow(
                McpWorkflow.run, kind, id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
            )
            assert await handle.result() == "sums: ['3', '7']" or await handle.result() == 'sums: [3, 7]'
            handles.append(handle)
    assert CALL_LOG.read_text().splitlines() == ['add 1 2', 'add 3 4'] * 2
    assert all(i is not None and 'Use add to add numbers.' in i for i in SEEN_INSTRUCTIONS)
    assert len(SEEN_INSTRUCTIONS) == 6

    per_run_get_tools = 1 if kind != 'fast' else 3  # FastMCPToolset has no tool cache: it lists every step.
    schedules: list[list[tuple[str, str | None]]] = []
    for handle in handles:
        activities = [(a.name, a.summary) for a in await scheduled_activities(client, handle)]
        schedules.append(activities)
        names = [n for n, _ in activities]
        # Cached per run, not per worker: the second run lists the tools again, like the first.
        assert names.count(f'{name}__get_tools') == per_run_get_tools
        assert names.count(f'{name}__get_instructions') == 3
        assert names.count(f'{name}__call_tool') == 2
        assert names.count(f'agent__mcp_{kind}__model_request') == 3
        assert names[0] == f'{name}__get_tools'
        summaries = set(activities)
        assert (f'{name}__get_tools', f'get tools: {kind}') in summaries
        assert (f'{name}__get_instructions', f'get instructions: {kind}') in summaries
        assert (f'{name}__call_tool', f'call tool: {kind}:add') in summaries
    assert schedules[0] == schedules[1]

    # A fresh worker replays the recorded histories without non-determinism.
    replayer = Replayer(workflows=[McpWorkflow], plugins=[PydanticAIPlugin()])
    for handle in handles:
        await replayer.replay_workflow(await handle.fetch_history())


def test_mcp_tool_cannot_disable_its_activity() -> None:
    with pytest.raises(UserError, match="Tool 'add' of MCP toolset 'modern'.*cannot do"):
        TemporalAgent(
            Agent(FunctionModel(math_model), name='mcp_no_activity', toolsets=[TOOLSETS['modern']]),
            tool_activity_config={'modern': {'add': False}},
        )
    assert [getattr(fn, '__temporal_activity_definition').name for fn in AGENTS['modern'].temporal_activities][7:] == [
        'agent__mcp_modern__mcp_server__modern__get_instructions',
        'agent__mcp_modern__mcp_server__modern__get_tools',
        'agent__mcp_modern__mcp_server__modern__call_tool',
        'agent__mcp_modern__external_event_ask',
    ]


class ThirdPartyMCPToolset(AbstractToolset[None]):
    """An MCP client toolset that is none of pydantic-ai's MCP classes (as a package other than pydantic-ai ships)."""

    @property
    def id(self) -> str:
        return 'elsewhere'

    async def get_tools(self, ctx: Any) -> dict[str, Any]:
        raise AssertionError('never listed: the agent is refused first')

    async def call_tool(self, name: str, tool_args: dict[str, Any], ctx: Any, tool: Any) -> Any:
        raise AssertionError('never called: the agent is refused first')


# Where such a class comes from is what tells it talks to an MCP server.
ThirdPartyMCPToolset.__module__ = 'fastmcp.contrib.pydantic_ai'


def test_an_mcp_toolset_that_cannot_be_made_durable_is_refused() -> None:
    with pytest.raises(UserError) as refused:
        TemporalAgent(Agent(FunctionModel(math_model), name='mcp_unknown', toolsets=[ThirdPartyMCPToolset()]))
    message = str(refused.value)
    assert message.startswith(
        "Toolset 'elsewhere' is a `ThirdPartyMCPToolset` (an MCP client, "
        '`fastmcp.contrib.pydantic_ai.ThirdPartyMCPToolset`), which TemporalAgent cannot make durable'
    )
    assert '`MCPToolset`' in message
    assert 'temporalize_toolset_func=' in message
