"""The stdio MCP server of the `mcp` compatibility scenario: `python mcp_server.py`."""

from __future__ import annotations

from mcp.server.fastmcp import FastMCP

server = FastMCP('units', instructions='Use to_fahrenheit to convert temperatures.')


@server.tool()
def to_fahrenheit(celsius: float) -> float:
    """Convert a temperature from Celsius to Fahrenheit."""
    return celsius * 9 / 5 + 32


if __name__ == '__main__':
    server.run()
