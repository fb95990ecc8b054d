"""The stdio MCP server of the `mcp` compatibility scenario: `python mcp_server.py`.

Built with the `mcp` SDK's server, whose tool schemas the committed histories recorded: `mcp.server.fastmcp.FastMCP` in
`mcp` 1.x (pydantic-ai 1.107), renamed `mcp.server.mcpserver.MCPServer` in `mcp` 2.x (pydantic-ai 2.x).
"""

from __future__ import annotations

import importlib
import importlib.util

if importlib.util.find_spec('mcp.server.mcpserver') is not None:
    FastMCP = importlib.import_module('mcp.server.mcpserver').MCPServer
else:
    FastMCP = importlib.import_module('mcp.server.fastmcp').FastMCP

server = FastMCP('units', instructions='Use to_fahrenheit to convert temperatures.')


@server.tool()
def to_fahrenheit(celsius: float) -> float:
    """Convert a temperature from Celsius to Fahrenheit."""
    return celsius * 9 / 5 + 32


if __name__ == '__main__':
    server.run()
