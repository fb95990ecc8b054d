"""The MCP server of the MCP crash agent (`mcp_crash_agent.py`), run over stdio by the agent's MCP toolset.

Its one tool takes the call's side-channel label (like the crash agent's `crunch`), so that the worker's
`process_tool_call` hook, which writes the side channel inside the engine's MCP unit, can tell calls and runs apart.
A server of its own: the conformance server (`mcp_server.py`) has its tool schemas recorded in golden histories.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

# `mcp.server.fastmcp.FastMCP` in `mcp` 1.x (pydantic-ai 1.107), `mcp.server.mcpserver.MCPServer` in `mcp` 2.x.
if importlib.util.find_spec('mcp.server.mcpserver') is not None:
    FastMCP: Any = importlib.import_module('mcp.server.mcpserver').MCPServer
else:
    FastMCP = importlib.import_module('mcp.server.fastmcp').FastMCP

server = FastMCP('crash-calculator')


@server.tool()
def add(label: str, a: int, b: int) -> int:
    """Add two integers (`label` names the call in the crash suite's side channel)."""
    return a + b


if __name__ == '__main__':
    server.run()
