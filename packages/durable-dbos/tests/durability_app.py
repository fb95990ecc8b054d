"""A DBOS app whose agent carries `DBOSDurability`, for the capability's crash-recovery test.

`python durability_app.py URL LOG NAME WORKFLOW_ID ours|reference [function|dynamic|mcp]` starts the user's workflow on a fresh database and
dies (`os._exit(17)`) inside the second model request; the test process recovers it with the same agent and workflow
(`build(name, log, crash=False)`), always with ours. `reference` records the workflow with pydantic-ai 2.x's own
`DBOSDurability` instead (on the pai2 line only; it is imported here, in the test app, never by the package).
Model requests, tool calls and the tool events the handler sees append lines to LOG.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterable, AsyncIterator, Callable
from pathlib import Path
from typing import Any

from dbos import DBOS, SetWorkflowID
from fastmcp.client.transports import StdioTransport
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import AgentStreamEvent, ModelMessage, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.toolsets import FunctionToolset

from durable_dbos import DBOSDurability
from durable_dbos.testing import dbos_session


def note(log: Path, line: str) -> None:
    with log.open('a') as file:
        file.write(line + '\n')


def build(
    name: str, log: Path, crash: bool, durability_class: type[Any] = DBOSDurability, tools: str = 'function'
) -> tuple[Agent[None, str], Callable[[str], Any]]:
    """The agent and the user's workflow (registered under `{name}.user_workflow`).

    `tools` says where the `add` tool comes from: `function` (a function tool), `dynamic` (a dynamic toolset, id
    `adders`, which the durability lists and calls in steps of its own; each build of the toolset appends a line to
    LOG) or `mcp` (tests/mcp_server.py over stdio, id `calc`, whose calls append to LOG through the server).
    """

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
        returned = [p for m in messages for p in m.parts if isinstance(p, ToolReturnPart)]
        if not returned:
            note(log, 'model 1')
            yield {
                0: DeltaToolCall(name='add', json_args='{"a": 1, "b": 2}', tool_call_id='c1'),
                1: DeltaToolCall(name='add', json_args='{"a": 3, "b": 4}', tool_call_id='c2'),
            }
            return
        note(log, 'model 2')
        if crash:
            os._exit(17)
        yield ' '.join(str(p.content) for p in returned)

    async def handler(ctx: RunContext[None], events: AsyncIterable[AgentStreamEvent]) -> None:
        async for event in events:
            if event.event_kind in ('function_tool_call', 'function_tool_result'):
                note(log, f'event {event.event_kind}')

    def add(a: int, b: int) -> int:
        note(log, f'tool add {a} {b}')
        return a + b

    toolsets: list[Any] = []
    if tools == 'mcp':
        import sys as _sys

        from pydantic_ai.mcp import MCPToolset

        server = str(Path(__file__).with_name('mcp_server.py'))
        # The server process appends `tool add A B` to LOG, as the function tool does.
        transport = StdioTransport(
            command=_sys.executable, args=[server], env={**os.environ, 'MCP_SERVER_CALL_LOG': str(log)}
        )
        toolsets.append(MCPToolset(transport, id='calc', init_timeout=60, read_timeout=60))
    if tools == 'dynamic':
        # Given to the constructor: pydantic-ai 2.x refuses a dynamic toolset added after the agent is built.
        from durable_kernel import DynamicToolset

        def adders(ctx: RunContext[None]) -> FunctionToolset[None]:
            note(log, 'toolset built')
            return FunctionToolset([add])

        toolsets.append(DynamicToolset(adders, id='adders'))

    agent = Agent(
        FunctionModel(stream_function=stream),
        toolsets=toolsets,
        name=name,
        capabilities=[durability_class(event_stream_handler=handler)],
    )

    if tools == 'function':
        agent.tool_plain(add)

    @DBOS.workflow(name=f'{name}.user_workflow')
    async def user_workflow(prompt: str) -> str:
        return (await agent.run(prompt)).output

    return agent, user_workflow


def main() -> None:
    url, log, name, workflow_id, impl = sys.argv[1:6]
    tools = (sys.argv[6:7] or ['function'])[0]
    durability_class: type[Any] = DBOSDurability
    if impl == 'reference':
        import importlib

        durability_class = importlib.import_module('pydantic_ai.durable_exec.dbos').DBOSDurability
    with dbos_session(url) as launch:
        _, workflow = build(name, Path(log), crash=True, durability_class=durability_class, tools=tools)
        launch()
        with SetWorkflowID(workflow_id):
            asyncio.run(workflow('add things'))
        raise AssertionError('the model request must have killed the process')


if __name__ == '__main__':
    main()
