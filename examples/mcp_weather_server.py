"""A tiny MCP server over stdio for the MCP examples: `python examples/mcp_weather_server.py`."""

from __future__ import annotations

from mcp.server.fastmcp import FastMCP

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
