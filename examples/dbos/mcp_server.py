"""An MCP server's tools in a durable agent: listing the tools and calling them are DBOS steps.

    uv run python -m examples.dbos.mcp_server [--model openai:gpt-4o]

The server is `examples/mcp_weather_server.py`, started over stdio. Give it an `id`: it names the steps.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from dbos import DBOS
from fastmcp.client.transports import StdioTransport
from pydantic_ai import Agent
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from durable_dbos import DBOSAgent
from examples._support import choose_model, example_args, run_example

SERVER_SCRIPT = Path(__file__).resolve().parents[1] / 'mcp_weather_server.py'


def scripted_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """A fake model: call the server's forecast tool once, then answer with its result."""
    returns = [
        part.content
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]
    if not returns:
        assert any(tool.name == 'get_forecast' for tool in info.function_tools), 'the MCP tools are listed'
        return ModelResponse(parts=[ToolCallPart('get_forecast', {'city': 'Lisbon'})])
    return ModelResponse(parts=[TextPart(f'Forecast: {returns[0]}')])


async def main() -> None:
    args = example_args(__doc__ or '')
    weather = MCPToolset(StdioTransport(command=sys.executable, args=[str(SERVER_SCRIPT)]), id='weather')
    agent = Agent(choose_model(args.model, FunctionModel(scripted_model)), name='forecaster', toolsets=[weather])
    dbos_agent = DBOSAgent(agent)

    with tempfile.TemporaryDirectory() as tmp:
        url = f'sqlite:///{Path(tmp) / "dbos.sqlite"}'
        DBOS(config={'name': 'mcp-example', 'system_database_url': url, 'log_level': 'WARNING'})
        DBOS.launch()
        try:
            result = await dbos_agent.run('What is the weather in Lisbon tomorrow?')
            print(result.output)
        finally:
            DBOS.destroy()


if __name__ == '__main__':
    run_example(main)
