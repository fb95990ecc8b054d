"""Event streaming: an `event_stream_handler` sees the model's text deltas and the tool calls as they happen.

    uv run python -m examples.temporal.event_streaming [--model openai:gpt-4o] [--address localhost:7233]

The handler runs in the worker, inside activities: a model request streams within its activity (the handler
consumes the live stream; the workflow gets the final response), and tool-call events reach it likewise. It runs
where the activities run, so print, log or publish from there (a queue, a websocket hub, ...).
"""

from __future__ import annotations

import uuid
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
from temporalio import workflow
from temporalio.worker import Worker

from durable_temporal import PydanticAIWorkflow, TemporalAgent
from examples._support import example_args, real_model_name, run_example
from examples.temporal._server import ADDRESS_HELP, temporal_client


async def get_time(city: str) -> str:
    """The local time in a city."""
    return f'It is 14:05 in {city}.'


async def print_events(ctx: RunContext[None], events: AsyncIterable[AgentStreamEvent]) -> None:
    """Print what the agent does, live (in the worker)."""
    async for event in events:
        if isinstance(event, PartStartEvent):
            print(f'[part {event.index} starts: {event.part.part_kind}]')
        elif isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
            print(f'[text] {event.delta.content_delta!r}')
        elif isinstance(event, FunctionToolCallEvent):
            print(f'[tool call] {event.part.tool_name}({event.part.args_as_dict()})')
        elif isinstance(event, FunctionToolResultEvent):
            print(f'[tool result] {event.part.content!r}')


agent = Agent(TestModel(custom_output_text='It is early afternoon in Tokyo.'), name='clock', tools=[get_time])
temporal_agent = TemporalAgent(agent, event_stream_handler=print_events)


@workflow.defn
class ClockWorkflow(PydanticAIWorkflow):
    """Answers a time question while the handler streams the events."""

    __pydantic_ai_agents__ = [temporal_agent]

    @workflow.run
    async def run(self, question: str, model: str | None) -> str:
        result = await temporal_agent.run(question, model=model)
        return result.output


async def main() -> None:
    args = example_args(__doc__ or '', options={'--address': ADDRESS_HELP})
    async with temporal_client(args.address) as client, Worker(client, task_queue='clock', workflows=[ClockWorkflow]):
        output = await client.execute_workflow(
            ClockWorkflow.run,
            args=['What time is it in Tokyo?', real_model_name(args.model)],
            id=f'clock-{uuid.uuid4().hex[:8]}',
            task_queue='clock',
        )
    print(f'Output: {output}')


if __name__ == '__main__':
    run_example(main, hard_exit=True)
