"""An MCP server's tools in a durable agent: listing and calling the tools are Temporal activities.

    uv run python -m examples.temporal.mcp_server [--model openai:gpt-4o] [--address localhost:7233]

The server is `examples/mcp_weather_server.py`, started over stdio by the worker's activities. Give the toolset an
`id`: it names the activities (`agent__forecaster__mcp_server__weather__call_tool`, ...).
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

from fastmcp.client.transports import StdioTransport
from pydantic_ai import Agent
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from temporalio import workflow
from temporalio.worker import Worker

from durable_temporal import PydanticAIWorkflow, TemporalAgent
from examples._support import example_args, real_model_name, run_example
from examples.temporal._server import ADDRESS_HELP, temporal_client

# Pure path arithmetic: the workflow sandbox, which re-imports this module, forbids file-system calls like resolve().
SERVER_SCRIPT = Path(__file__).parents[1] / 'mcp_weather_server.py'


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
        return ModelResponse(parts=[ToolCallPart('get_forecast', {'city': 'Lisbon'})])
    return ModelResponse(parts=[TextPart(f'Forecast: {returns[0]}')])


weather = MCPToolset(StdioTransport(command=sys.executable, args=[str(SERVER_SCRIPT)]), id='weather')
agent = Agent(FunctionModel(scripted_model), name='forecaster', toolsets=[weather])
temporal_agent = TemporalAgent(agent)


@workflow.defn
class ForecastWorkflow(PydanticAIWorkflow):
    """Answers a weather question with the MCP server's tools."""

    __pydantic_ai_agents__ = [temporal_agent]

    @workflow.run
    async def run(self, question: str, model: str | None) -> str:
        result = await temporal_agent.run(question, model=model)
        return result.output


async def main() -> None:
    args = example_args(__doc__ or '', options={'--address': ADDRESS_HELP})
    async with (
        temporal_client(args.address) as client,
        Worker(client, task_queue='forecast', workflows=[ForecastWorkflow]),
    ):
        output = await client.execute_workflow(
            ForecastWorkflow.run,
            args=['What is the weather in Lisbon tomorrow?', real_model_name(args.model)],
            id=f'forecast-{uuid.uuid4().hex[:8]}',
            task_queue='forecast',
        )
    print(output)


if __name__ == '__main__':
    run_example(main, hard_exit=True)
