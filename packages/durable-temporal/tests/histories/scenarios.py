"""The agents and runs whose workflow histories must replay on both the reference integration and ours.

Only plain pydantic-ai here: `reference_app` and `ours_app` wrap the same agents with their `TemporalAgent`, under
the same agent names, in a workflow type of the same name, so each can replay the other's histories.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterable
from pathlib import Path
from typing import Any

from fastmcp.client.transports import StdioTransport
from pydantic import BaseModel
from pydantic_ai import Agent, FunctionToolset, RunContext
from pydantic_ai.exceptions import CallDeferred, ModelRetry
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.messages import AgentStreamEvent, ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.tools import DeferredToolRequests

WORKFLOW_NAME = 'CompatScenarioWorkflow'
SWAP_WORKFLOW_NAME = 'CompatSwapWorkflow'
SCENARIOS = (
    'plain',
    'tools',
    'structured',
    'retry',
    'stream',
    'deferred',
    'approval',
    'dynamic',
    'models',
    'mcp',
    'stream_output',
)
PROMPT = 'What is the weather in Paris?'
MCP_SERVER_SCRIPT = Path(__file__).with_name('mcp_server.py')


class Deps(BaseModel):
    """Dependencies of the `tools` scenario: they cross to every tool activity as its second argument."""

    user: str
    units: str = 'celsius'


class CityInfo(BaseModel):
    """The output of the `structured` scenario."""

    city: str
    population: int


async def get_weather(ctx: RunContext[Deps], city: str) -> str:
    """The weather in `city`."""
    return f'sunny in {city} ({ctx.deps.units}, for {ctx.deps.user})'


def get_time(ctx: RunContext[Deps]) -> str:
    """The current time (a sync tool: it runs in a thread inside its activity)."""
    return '12:00'


def flaky(ctx: RunContext[None], attempt: int) -> str:
    """Ask the model to try again the first time."""
    if ctx.retry == 0:
        raise ModelRetry('try again with attempt=2')
    return f'ok after {ctx.retry} retries'


def retry_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Call `flaky` until it returns, then answer: two tool calls and a retry prompt in between."""
    calls = sum(
        isinstance(part, ToolCallPart)
        for message in messages
        if isinstance(message, ModelResponse)
        for part in message.parts
    )
    if calls < 2:
        return ModelResponse(parts=[ToolCallPart('flaky', {'attempt': calls + 1}, tool_call_id=f'call-{calls + 1}')])
    return ModelResponse(parts=[TextPart('flaky worked')])


async def handle_events(ctx: RunContext[Any], events: AsyncIterable[AgentStreamEvent]) -> None:
    """Consume the event stream (inside activities: it must not touch workflow state)."""
    async for _ in events:
        pass


async def lookup(city: str) -> str:
    """A tool that finishes outside the run: the caller gets a `DeferredToolRequests`."""
    raise CallDeferred(metadata={'city': city})


def build_agents() -> dict[str, Agent[Any, Any]]:
    """One fresh agent per scenario, named `compat_<scenario>`."""
    tools_agent = Agent(TestModel(), name='compat_tools', deps_type=Deps, tools=[get_weather, get_time])
    dynamic_agent = Agent(TestModel(), name='compat_dynamic')
    dynamic_agent.toolset(id='weather_tools')(weather_toolset)
    approval_agent = Agent(TestModel(), name='compat_approval', output_type=[str, DeferredToolRequests])
    approval_agent.tool_plain(requires_approval=True)(delete_file)
    return {
        'plain': Agent(TestModel(custom_output_text='Hello from the plain agent'), name='compat_plain'),
        'tools': tools_agent,
        'structured': Agent(TestModel(), name='compat_structured', output_type=CityInfo),
        'retry': Agent(FunctionModel(retry_model), name='compat_retry', tools=[flaky]),
        # The apps give this one `event_stream_handler=handle_events`: its model requests are streamed.
        'stream': Agent(TestModel(), name='compat_stream', tools=[get_weather_plain]),
        'deferred': Agent(TestModel(), name='compat_deferred', tools=[lookup], output_type=[str, DeferredToolRequests]),
        'approval': approval_agent,
        'dynamic': dynamic_agent,
        # The apps register `models={'other': ...}` for this one, and the run picks it by key.
        'models': Agent(TestModel(custom_output_text='from the default model'), name='compat_models'),
        # Streamed too, with an output tool: output-tool events reach the handler.
        'stream_output': Agent(TestModel(), name='compat_stream_output', output_type=CityInfo),
        'mcp': Agent(
            TestModel(),
            name='compat_mcp',
            toolsets=[
                MCPToolset(
                    StdioTransport(command=sys.executable, args=[str(MCP_SERVER_SCRIPT)]),
                    id='units',
                    include_instructions=True,
                )
            ],
        ),
    }


def wrapper_options(scenario: str) -> dict[str, Any]:
    """Keyword arguments for `TemporalAgent(agent, ...)`: the same for the reference and ours."""
    if scenario in ('stream', 'stream_output'):
        return {'event_stream_handler': handle_events}
    if scenario == 'models':
        return {'models': {'other': TestModel(custom_output_text='from the other model', model_name='other')}}
    return {}


async def run_scenario(agent: Any, scenario: str) -> str:
    """The workflow body: run `agent` (a reference or our `TemporalAgent`) the way `scenario` does."""
    if scenario == 'approval':
        first = await agent.run(PROMPT)
        assert isinstance(first.output, DeferredToolRequests)
        second = await agent.run(
            message_history=first.all_messages(), deferred_tool_results=first.output.build_results(approve_all=True)
        )
        return f'{describe(first.output)} | {describe(second.output)}'
    options: dict[str, Any] = {'model': 'other'} if scenario == 'models' else {}
    result = await agent.run(PROMPT, deps=deps_for(scenario), **options)
    return describe(result.output)


async def get_weather_plain(city: str) -> str:
    """The weather in `city`, without deps."""
    return f'rainy in {city}'


def deps_for(scenario: str) -> Deps | None:
    """The deps a scenario runs with."""
    return Deps(user='ann') if scenario == 'tools' else None


def delete_file(path: str) -> str:
    """A tool that needs the user's approval first."""
    return f'deleted {path}'


def weather_toolset(ctx: RunContext[None]) -> FunctionToolset[None]:
    """The tools of the `dynamic` scenario, built per run step."""
    return FunctionToolset([get_weather_plain])


def describe(output: object) -> str:
    """A deterministic text form of a run's output, returned by the workflow."""
    if isinstance(output, BaseModel):
        return output.model_dump_json()
    if isinstance(output, DeferredToolRequests):
        calls = ','.join(f'{call.tool_name}{call.args}' for call in output.calls)
        approvals = ','.join(f'{call.tool_name}{call.args}' for call in output.approvals)
        return f'deferred: {calls}' + (f' approvals: {approvals}' if approvals else '')
    return str(output)
