"""A tiny stdio MCP server for the conformance scenarios (run as a script by `MCPServerStdio`)."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

# The `mcp` SDK's own server (its tool schemas are what the golden histories recorded): `mcp.server.fastmcp.FastMCP`
# in `mcp` 1.x (pydantic-ai 1.107), renamed `mcp.server.mcpserver.MCPServer` in `mcp` 2.x (pydantic-ai 2.x).
if importlib.util.find_spec('mcp.server.mcpserver') is not None:
    FastMCP: Any = importlib.import_module('mcp.server.mcpserver').MCPServer
else:
    FastMCP = importlib.import_module('mcp.server.fastmcp').FastMCP

server = FastMCP('calculator', instructions='Use `add` to add numbers.')


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def describe_number(n: int) -> str:
    """Say whether a number is even."""
    return f'{n} is {"even" if n % 2 == 0 else "odd"}'


if __name__ == '__main__':
    server.run()
