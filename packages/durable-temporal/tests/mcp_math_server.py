"""A tiny stdio MCP server for the MCP tests: `python mcp_math_server.py <call log file>`.

Built with the `mcp` SDK's server, whose tool schemas the committed histories recorded: `mcp.server.fastmcp.FastMCP` in
`mcp` 1.x (pydantic-ai 1.107), renamed `mcp.server.mcpserver.MCPServer` in `mcp` 2.x (pydantic-ai 2.x).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

if importlib.util.find_spec('mcp.server.mcpserver') is not None:
    FastMCP = importlib.import_module('mcp.server.mcpserver').MCPServer
else:
    FastMCP = importlib.import_module('mcp.server.fastmcp').FastMCP

server = FastMCP('math', instructions='Use add to add numbers.')


@server.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    if len(sys.argv) > 1:
        with open(sys.argv[1], 'a') as log:
            log.write(f'add {a} {b}\n')
    return a + b


if __name__ == '__main__':
    server.run()
