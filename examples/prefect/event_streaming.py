"""Event streaming: an `event_stream_handler` sees the model's text deltas and the tool calls as they happen.

    uv run python -m examples.prefect.event_streaming [--model openai:gpt-4o]

With a handler, each model request streams inside its Prefect task (the task consumes the live stream and caches the
final response); tool events are handled in tasks too. Cached tasks are not re-run, so their events are not re-emitted.
"""

from __future__ import annotations

from collections.abc import AsyncIterable

from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import (
    AgentStreamEvent,
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    PartDeltaEvent,
    PartStartEvent,
    TextPartDelta,
)
from pydantic_ai.models.test import TestModel

from durable_prefect import PrefectAgent
from examples._support import choose_model, example_args, run_example


async def get_time(city: str) -> str:
    """The local time in a city."""
    return f'It is 14:05 in {city}.'


async def print_events(ctx: RunContext[None], events: AsyncIterable[AgentStreamEvent]) -> None:
    """Print what the agent does, live."""
    async for event in events:
        if isinstance(event, PartStartEvent):
            print(f'[part {event.index} starts: {event.part.part_kind}]')
        elif isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
            print(f'[text] {event.delta.content_delta!r}')
        elif isinstance(event, FunctionToolCallEvent):
            print(f'[tool call] {event.part.tool_name}({event.part.args_as_dict()})')
        elif isinstance(event, FunctionToolResultEvent):
            print(f'[tool result] {event.part.content!r}')


async def main() -> None:
    args = example_args(__doc__ or '')
    model = choose_model(args.model, TestModel(custom_output_text='It is early afternoon in Tokyo.'))
    agent = Agent(model, name='clock', tools=[get_time])
    prefect_agent = PrefectAgent(agent, event_stream_handler=print_events)
    result = await prefect_agent.run('What time is it in Tokyo?')
    print(f'Output: {result.output}')


if __name__ == '__main__':
    run_example(main)
