"""The agent and workflow of the crash test, shared by the test process and the worker subprocess it kills.

Every model request and tool call appends a line to the file named by `DURABLE_CRASH_LOG`, so the test can count
what ran. With `DURABLE_CRASH_BLOCK` set (the first worker), `step_two` blocks until the process is killed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import AsyncIterable, AsyncIterator
from datetime import timedelta

from pydantic import BaseModel
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import (
    AgentStreamEvent,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from temporalio import workflow

from durable_temporal import AgentEventStream, TemporalAgent, TemporalDurability


def _log(line: str) -> None:
    with open(os.environ['DURABLE_CRASH_LOG'], 'a') as log:
        log.write(line + '\n')


def crash_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    done = [
        part.tool_name
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]
    # How many messages the model saw: a request after the worker restart still sees the whole conversation.
    _log(f'model {len(done)} of {len(messages)}')
    if not done:
        return ModelResponse(parts=[ToolCallPart('step_one', {})])
    if len(done) == 1:
        return ModelResponse(parts=[ToolCallPart('step_two', {})])
    return ModelResponse(parts=[TextPart('finished')])


class CrashDeps(BaseModel):
    """Deps over the inline limit: only the first activity carries them, the others name them by digest."""

    blob: str


DEPS = CrashDeps(blob='d' * 10_000)

crash_agent = Agent(FunctionModel(crash_model), name='crash', deps_type=CrashDeps)


@crash_agent.tool
async def step_one(ctx: RunContext[CrashDeps]) -> str:
    _log('step_one')
    return 'one'


@crash_agent.tool
async def step_two(ctx: RunContext[CrashDeps]) -> str:
    _log('step_two start')
    if os.environ.get('DURABLE_CRASH_BLOCK'):
        await asyncio.sleep(3600)
    # On the new worker: the deps were carried by the first worker's first activity, and come from the history.
    _log(f'step_two done with {len(ctx.deps.blob)} bytes of deps')
    return 'two'


temporal_crash_agent = TemporalAgent(
    crash_agent,
    # A short timeout, so that the attempt lost with the killed worker is retried soon on the new one.
    tool_activity_config={'<agent>': {'step_two': {'start_to_close_timeout': timedelta(seconds=3)}}},
)


@workflow.defn
class CrashWorkflow:
    @workflow.run
    async def run(self) -> str:
        return (await temporal_crash_agent.run('crash me', deps=DEPS)).output


# The same agent with every unit a local activity (issue 17): recorded as markers when the workflow task completes.
local_crash_agent = TemporalAgent(crash_agent, name='crash_local', local_activities=True)


@workflow.defn
class LocalCrashWorkflow:
    @workflow.run
    async def run(self) -> str:
        return (await local_crash_agent.run('crash me', deps=DEPS)).output


LIVE_CHUNKS = [f't{index} ' for index in range(30)]


async def live_crash_stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
    """Streams `LIVE_CHUNKS`; with `DURABLE_CRASH_BLOCK`, blocks after the first 10 until the process is killed."""
    for index, chunk in enumerate(LIVE_CHUNKS):
        if index == 10 and os.environ.get('DURABLE_CRASH_BLOCK'):
            _log('stream blocked')
            await asyncio.sleep(3600)
        yield chunk
        await asyncio.sleep(0.02)


HAS_WORKFLOW_STREAMS = importlib.util.find_spec('temporalio.contrib.workflow_streams') is not None
"""Whether this temporalio has Workflow Streams (1.27.0 and later), which `event_stream_topic` needs."""

live_crash_agent = Agent(
    FunctionModel(stream_function=live_crash_stream),
    name='crash_live',
    capabilities=[
        TemporalDurability(
            event_stream_topic='crash-events' if HAS_WORKFLOW_STREAMS else None,
            # A short timeout, so that the attempt lost with the killed worker is retried soon on the new one.
            model_activity_config={'start_to_close_timeout': timedelta(seconds=3)},
        )
    ],
)


@workflow.defn
class LiveCrashWorkflow:
    @workflow.init
    def __init__(self) -> None:
        self.events = AgentEventStream(drain_timeout=timedelta(seconds=20))

    @workflow.run
    async def run(self) -> str:
        async with self.events:
            return (await live_crash_agent.run('stream, then crash')).output


async def _ignore_events(ctx: RunContext[None], events: AsyncIterable[AgentStreamEvent]) -> None:
    async for _ in events:
        pass


# A model request streamed under a long start-to-close timeout and a short heartbeat timeout: a killed worker's
# request must be retried within seconds (the heartbeat timeout), not after two minutes.
heartbeat_crash_agent = TemporalAgent(
    Agent(FunctionModel(stream_function=live_crash_stream), name='crash_heartbeat'),
    event_stream_handler=_ignore_events,  # a handler makes the requests streamed
    model_activity_config={'start_to_close_timeout': timedelta(minutes=2), 'heartbeat_timeout': timedelta(seconds=2)},
)


@workflow.defn
class HeartbeatCrashWorkflow:
    @workflow.run
    async def run(self) -> str:
        return (await heartbeat_crash_agent.run('stream, then crash')).output
