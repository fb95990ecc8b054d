"""A local stdio MCP server for the tests: `python mcp_server.py`.

Built with the `fastmcp` package, which both pydantic-ai lines install: the `mcp` SDK's own `mcp.server.fastmcp`
exists in `mcp` 1.x only (pydantic-ai 2.x brings `mcp` 2.x, where it was renamed).
"""

from __future__ import annotations

from fastmcp import FastMCP

server = FastMCP('calc', instructions='Use `add` to add numbers.')


@server.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@server.tool()
def divide(a: int, b: int) -> float:
    """Divide two numbers."""
    if b == 0:
        raise ValueError('cannot divide by zero')
    return a / b


if __name__ == '__main__':
    server.run()
