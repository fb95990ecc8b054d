"""A tiny MCP server for the tests: run over stdio, or imported for in-process FastMCP transports."""

from __future__ import annotations

from mcp.server.fastmcp import FastMCP

server = FastMCP('echo')


@server.tool()
def shout(text: str) -> str:
    """Return the text in capitals."""
    return text.upper()


if __name__ == '__main__':
    server.run()
