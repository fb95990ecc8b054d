"""A tiny MCP server for the tests, run over stdio.

Written with the standalone `fastmcp` package, which both pydantic-ai lines bring: the `mcp` SDK's own
`mcp.server.fastmcp` is gone in the `mcp` 2.x that pydantic-ai 2.x installs.
"""

from __future__ import annotations

from fastmcp import FastMCP

server: FastMCP[None] = FastMCP('echo')


@server.tool
def shout(text: str) -> str:
    """Return the text in capitals."""
    return text.upper()


if __name__ == '__main__':
    server.run(show_banner=False)
