"""A tiny MCP server over stdio for the MCP examples: `python examples/mcp_weather_server.py`."""

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

server = FastMCP('weather', log_level='WARNING')


@server.tool()
def get_forecast(city: str) -> str:
    """The weather forecast for a city."""
    return f'{city}: sunny, 21 degrees C, light breeze.'


@server.tool()
def get_air_quality(city: str) -> str:
    """The air quality index of a city."""
    return f'{city}: AQI 38 (good).'


if __name__ == '__main__':
    server.run()
