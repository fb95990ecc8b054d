"""A tiny stdio MCP server for the conformance scenarios (run as a script by `MCPServerStdio`)."""

from __future__ import annotations

from mcp.server.fastmcp import FastMCP

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
