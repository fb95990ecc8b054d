"""The crash agent's MCP twin, for the migration tests' kill in an MCP unit: model request 1 calls the MCP tool (call
mcp-a), model request 2 calls it again (call mcp-c), model request 3 answers.

The tool runs on a stdio MCP server (`mcp_crash_server.py`); the side channel is written by the toolset's
`process_tool_call` hook, which runs inside the engine's MCP unit (DBOS step, Prefect task, Temporal activity) in the
worker process, so the kill at `start mcp-c` (line 7) kills the worker in the middle of an MCP tool call. The run
tags are the crash agent's (`crash_prompt`); its phases are `MCP_PHASES` (the crash agent's `PHASES` name that agent's
calls only: the crash suite counts a run's units from it).

The toolset is what each line offers for a stdio server: `MCPServerStdio` on pydantic-ai 1.107 (the only MCP class
the 1.107 reference `PrefectAgent` makes tasks of), `MCPToolset` with the same `id` on 2.x (which removed
`MCPServerStdio`): the units keep their names, as docs/migration.md tells a user upgrading to do.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, ToolReturnPart

from durable_kernel import PYDANTIC_AI_2

from ._scripted import calls, prompt_text, scripted_model, text, turn
from .crash_agent import RUN_TAG_PREFIX, TOOL_RUN_SEPARATOR, CrashDeps, side_channel

__all__ = ('MCP_CRASH_SERVER', 'MCP_EXPECTED_OUTPUT', 'MCP_PHASES', 'MCP_TOOLSET_ID', 'mcp_crash_agent')

MCP_CRASH_SERVER = Path(__file__).with_name('mcp_crash_server.py')
MCP_TOOLSET_ID = 'crashmcp'
MCP_EXPECTED_OUTPUT = 'done after 3 requests, tool results mcp-a=42+mcp-c=42'
MCP_PHASES: dict[str, int] = {'model-1': 0, 'mcp-a': 1, 'model-2': 2, 'mcp-c': 3, 'model-3': 4}
"""Phase of each call label, as the crash agent's `PHASES`."""


def _model(messages: list[ModelMessage], info: Any) -> ModelResponse:
    step = turn(messages) + 1
    _, _, run = prompt_text(messages).partition(RUN_TAG_PREFIX)

    def label(name: str) -> str:
        return f'{name}{TOOL_RUN_SEPARATOR}{run}' if run else name

    with side_channel(f'model-{step}', run):
        if step == 1:
            return calls(('add', {'label': label('mcp-a'), 'a': 2, 'b': 40}, 'mcp-a'))
        if step == 2:
            return calls(('add', {'label': label('mcp-c'), 'a': 5, 'b': 37}, 'mcp-c'))
        returns = [
            f'{part.tool_call_id}={part.content}'
            for message in messages
            if isinstance(message, ModelRequest)
            for part in message.parts
            if isinstance(part, ToolReturnPart)
        ]
        return text(f'done after {step} requests, tool results {"+".join(returns)}')


async def _record_call(ctx: RunContext[Any], call_tool: Any, name: str, tool_args: dict[str, Any]) -> Any:
    # Runs in the worker, inside the engine's MCP tool unit: the side channel's start line may kill the worker there.
    label, _, run = str(tool_args.get('label', name)).partition(TOOL_RUN_SEPARATOR)
    with side_channel(label, run):
        return await call_tool(name, tool_args)


def _toolset() -> Any:
    from pydantic_ai import mcp

    if PYDANTIC_AI_2:
        return mcp.MCPToolset(MCP_CRASH_SERVER, id=MCP_TOOLSET_ID, process_tool_call=_record_call, init_timeout=30)
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message=r'.*MCPServerStdio.*')  # deprecated on 1.107, still what is run
        return mcp.MCPServerStdio(  # pyright: ignore[reportDeprecated]
            sys.executable, [str(MCP_CRASH_SERVER)], id=MCP_TOOLSET_ID, process_tool_call=_record_call, timeout=30
        )


mcp_crash_agent = Agent(
    scripted_model('mcp_crash', _model), name='mcp_crash_agent', deps_type=CrashDeps, toolsets=[_toolset()]
)
