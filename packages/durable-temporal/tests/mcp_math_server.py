"""A tiny stdio MCP server for the MCP tests: `python mcp_math_server.py <call log file>`."""

from __future__ import annotations

import sys

from mcp.server.fastmcp import FastMCP

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
