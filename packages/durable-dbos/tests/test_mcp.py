from __future__ import annotations

import importlib
import sys
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args, get_type_hints

import pydantic_ai.messages
import pytest
from dbos import DBOS, SetWorkflowID
from pydantic_ai import Agent, RunContext
from pydantic_ai.exceptions import UserError
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.messages import ModelMessage, ModelResponse, RetryPromptPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.toolsets import AbstractToolset, ToolsetTool
from pydantic_ai.usage import RunUsage

from durable_dbos import DBOSAgent, DBOSMCPServer
from durable_dbos.testing import workflow_step_names_async
from durable_kernel import PYDANTIC_AI_2

from .helpers import call, respond

# A hang fails the test instead of the suite: generous, for a loaded 2-core machine (each MCP step starts the server).
pytestmark = [pytest.mark.anyio, pytest.mark.timeout(300)]

SERVER = str(Path(__file__).with_name('mcp_server.py'))
# What the model sees of the server's instructions: 2.x releases that know instruction sources (not 2.33, nor 1.107)
# put a keyed toolset's instructions in a context element.
SERVER_INSTRUCTIONS = (
    '<pyai:context id="toolset:calc">\nUse `add` to add numbers.\n</pyai:context>\nA later <pyai:context> element '
    'with the same id replaces the earlier one and stays in effect until replaced again.'
    if hasattr(pydantic_ai.messages, 'ToolsetInstructionSource')
    else 'Use `add` to add numbers.'
)


# `MCPServerStdio` and `FastMCPToolset` are 1.107-only classes (removed in pydantic-ai 2.x): their tests run on 1.107;
# on 2.x their counterpart, `MCPToolset` on the same server, runs every one of these tests.
_ONLY_1107 = pytest.mark.skipif(
    PYDANTIC_AI_2, reason='removed in pydantic-ai 2.x, where `MCPToolset` on the same server is tested instead'
)
KINDS = [
    pytest.param('MCPServerStdio', marks=_ONLY_1107),
    'MCPToolset',
    pytest.param('FastMCPToolset', marks=_ONLY_1107),
]
CACHING_KINDS = [pytest.param('MCPServerStdio', marks=_ONLY_1107), 'MCPToolset']


def make_server(kind: str, *, cache_tools: bool = True) -> AbstractToolset[Any]:
    # `MCPServerStdio` and `FastMCPToolset` are deprecated in pydantic-ai 1.x but still supported (and wrapped).
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        return _make_server(kind, cache_tools=cache_tools)


# Starting the server's Python process takes seconds on a loaded machine (tests run in parallel): more than the
# clients' 5-second default for the session to start. Replies get the same limit (the FastMCP client has none).
START_TIMEOUT = 60


def _make_server(kind: str, *, cache_tools: bool) -> AbstractToolset[Any]:
    from fastmcp import Client
    from fastmcp.client.transports import StdioTransport

    if kind == 'MCPToolset':
        transport = StdioTransport(command=sys.executable, args=[SERVER])
        return MCPToolset(
            transport,
            id='calc',
            include_instructions=True,
            cache_tools=cache_tools,
            init_timeout=START_TIMEOUT,
            read_timeout=START_TIMEOUT,
        )
    assert not PYDANTIC_AI_2, f'{kind} exists on pydantic-ai 1.107 only'
    if kind == 'MCPServerStdio':
        from pydantic_ai.mcp import MCPServerStdio  # pyright: ignore[reportDeprecated]

        return MCPServerStdio(  # pyright: ignore[reportDeprecated]
            sys.executable,
            [SERVER],
            id='calc',
            include_instructions=True,
            cache_tools=cache_tools,
            timeout=START_TIMEOUT,
            read_timeout=START_TIMEOUT,
        )
    from pydantic_ai.toolsets.fastmcp import FastMCPToolset  # pyright: ignore[reportDeprecated]

    client = Client(
        StdioTransport(command=sys.executable, args=[SERVER]), init_timeout=START_TIMEOUT, timeout=START_TIMEOUT
    )
    return FastMCPToolset(client, id='calc', include_instructions=True)  # pyright: ignore[reportDeprecated]


def outcome(part: ToolReturnPart) -> str:
    """The part's outcome as plain text: `'retried'` exists on later pydantic-ai 2.x releases only."""
    return part.outcome


RETRY_IS_A_TOOL_RETURN = 'retried' in get_args(get_type_hints(ToolReturnPart)['outcome'])
"""Whether a retried tool call reaches the model as a `ToolReturnPart` with the `'retried'` outcome (later 2.x
releases) rather than as a `RetryPromptPart` (1.107 and 2.33): told by the outcome's type, not by the line."""


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


@pytest.mark.parametrize('kind', KINDS)
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
    # The tool error became `ModelRetry` in the step and crossed it as data. pydantic-ai 1.107 and 2.33 report a
    # retried call as a `RetryPromptPart`, later 2.x releases as a `ToolReturnPart` whose outcome is 'retried'.
    returns = [p for p in parts if isinstance(p, ToolReturnPart)]
    assert [p.content for p in returns if outcome(p) != 'retried'] == [3]
    if RETRY_IS_A_TOOL_RETURN:
        assert [p.tool_name for p in returns if outcome(p) == 'retried'] == ['divide']
    else:
        assert [p.tool_name for p in parts if isinstance(p, RetryPromptPart)] == ['divide']
    assert recording.instructions == [SERVER_INSTRUCTIONS] * 2
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
    # A result is recorded as itself (pydantic-ai's own `DBOSMCPServer` reads it after a rollback), control flow as data.
    assert [type(s['output']).__name__ for s in steps if s['function_name'].endswith('call_tool')] == [
        'int',
        'ToolRetryRequested',
    ]


@pytest.mark.parametrize('kind', CACHING_KINDS)
async def test_tool_definitions_are_cached_per_run_not_per_process(
    kind: str, agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    """Each run lists the tools in its own step: the step sequence never depends on an earlier run."""
    dbos_agent = DBOSAgent(Agent(RecordingModel().model, name=agent_name, toolsets=[make_server(kind)]))
    dbos_launch()
    for _ in range(2):
        workflow_id = str(uuid.uuid4())
        with SetWorkflowID(workflow_id):
            await dbos_agent.run('go')
        names = await workflow_step_names_async(workflow_id)
        assert names.count(f'{agent_name}__mcp_server__calc.get_tools') == 1


@pytest.mark.parametrize('kind', CACHING_KINDS)
async def test_cache_tools_false_lists_tools_for_every_request(
    kind: str, agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    server = make_server(kind, cache_tools=False)
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


async def test_an_mcp_toolset_built_by_a_dynamic_toolset_is_refused(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    """Its listing would run in workflow code, outside any step: the run fails loudly instead."""
    agent = Agent(RecordingModel().model, name=agent_name)

    @agent.toolset(id='dynamic')
    def per_step_server(ctx: RunContext[None]) -> AbstractToolset[None]:
        return make_server('MCPToolset')

    dbos_agent = DBOSAgent(agent)
    dbos_launch()
    with pytest.raises(UserError, match=rf"built MCPToolset 'calc' during the run.*step_name_prefix='{agent_name}'"):
        await dbos_agent.run('go')


async def test_a_dbos_mcp_server_built_by_a_dynamic_toolset_lists_in_steps(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    agent = Agent(RecordingModel().model, name=agent_name)

    @agent.toolset(id='dynamic', per_run_step=False)
    def per_run_server(ctx: RunContext[None]) -> AbstractToolset[None]:
        return DBOSMCPServer(make_server('MCPToolset'), step_name_prefix=agent_name)

    dbos_agent = DBOSAgent(agent)
    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        assert (await dbos_agent.run('go')).output == 'done'
    names = await workflow_step_names_async(workflow_id)
    # The calls are steps of the dynamic toolset (the MCP call runs inside them); the listing is the server's step.
    assert names == [
        f'{agent_name}__mcp_server__calc.get_tools',
        f'{agent_name}__mcp_server__calc.get_instructions',
        f'{agent_name}__model.request',
        f'{agent_name}__toolset__dynamic.call_tool.add',
        f'{agent_name}__toolset__dynamic.call_tool.divide',
        f'{agent_name}__model.request',
    ]


@pytest.mark.skipif(not PYDANTIC_AI_2, reason='the `MCP` capability is a pydantic-ai 2.x class')
async def test_the_mcp_capability_toolset_is_made_durable(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    """pydantic-ai 2.x's `MCP` capability brings its own `MCPToolset`: its listing and calls are steps too."""
    mcp_capability: Any = importlib.import_module('pydantic_ai.capabilities').MCP
    recording = RecordingModel()
    agent = Agent(recording.model, name=agent_name, capabilities=[mcp_capability(local=make_server('MCPToolset'))])
    dbos_agent = DBOSAgent(agent)
    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        assert (await dbos_agent.run('go')).output == 'done'
    prefix = f'{agent_name}__mcp_server__calc'
    assert await workflow_step_names_async(workflow_id) == [
        f'{prefix}.get_tools',
        f'{prefix}.get_instructions',
        f'{agent_name}__model.request',
        f'{prefix}.call_tool',
        f'{prefix}.call_tool',
        f'{agent_name}__model.request',
    ]


async def test_tool_for_tool_def_rebuilds_a_listed_tool_that_a_step_can_call(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    """`tool_for_tool_def` (public, as in the reference) turns a definition the listing step recorded into a tool."""
    server = DBOSMCPServer(make_server('MCPToolset'), step_name_prefix=agent_name)
    ctx = RunContext[None](deps=None, model=TestModel(), usage=RunUsage())
    built: list[ToolsetTool[None]] = []

    @DBOS.workflow(name=f'{agent_name}.add')
    async def add_with_a_rebuilt_tool() -> Any:
        listed = await server.get_tools(ctx)
        built.append(server.tool_for_tool_def(listed['add'].tool_def, ctx=ctx))
        return await server.call_tool('add', {'a': 2, 'b': 3}, ctx, built[0])

    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        assert await add_with_a_rebuilt_tool() == 5
    [tool] = built
    assert tool.toolset is server.wrapped
    assert tool.tool_def.name == 'add'
    assert await workflow_step_names_async(workflow_id) == [
        f'{agent_name}__mcp_server__calc.get_tools',
        f'{agent_name}__mcp_server__calc.call_tool',
    ]
    if PYDANTIC_AI_2:
        # 2.x's tool takes its retry budget from the run context: without it, the error says to pass it.
        with pytest.raises(
            UserError, match=r"tool 'add' of .* needs the run context .* `tool_for_tool_def\(tool_def, ctx=ctx\)`"
        ):
            server.tool_for_tool_def(tool.tool_def)
    else:
        # 1.107's tool is built from the definition alone, as the reference's `tool_for_tool_def(tool_def)` is.
        assert server.tool_for_tool_def(tool.tool_def).tool_def == tool.tool_def
