"""A local MCP server for the tests: `python mcp_server.py` (stdio), `python mcp_server.py http PORT` (streamable HTTP
on 127.0.0.1:PORT, path `/mcp`). With `MCP_SERVER_CALL_LOG=PATH` in its environment, every `add` call appends a line
to PATH (how the tests see that a recovered or forked workflow did not call the server again).

Built with the `fastmcp` package, which both pydantic-ai lines install: the `mcp` SDK's own `mcp.server.fastmcp`
exists in `mcp` 1.x only (pydantic-ai 2.x brings `mcp` 2.x, where it was renamed).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from fastmcp import FastMCP

server = FastMCP('calc', instructions='Use `add` to add numbers.')


@server.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    if call_log := os.environ.get('MCP_SERVER_CALL_LOG'):
        with Path(call_log).open('a') as file:
            file.write(f'add {a} {b}\n')
    return a + b


@server.tool()
def divide(a: int, b: int) -> float:
    """Divide two numbers."""
    if b == 0:
        raise ValueError('cannot divide by zero')
    return a / b


if __name__ == '__main__':
    if sys.argv[1:2] == ['http']:
        server.run(transport='http', host='127.0.0.1', port=int(sys.argv[2]), show_banner=False)
    else:
        server.run()
