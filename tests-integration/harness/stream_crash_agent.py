"""The agent the stream-out kill scenarios kill: a streamed model request, a tool call, a streamed answer.

Its durable wrappers publish to `STREAM_CRASH_TOPIC`, read live by consumers in the test process while the worker
process runs the agent and is SIGKILLed (`harness/stream_out_crash.py`). The calls write the side channel of the crash
suite (`crash_agent.side_channel`), which kills the worker at a chosen line:

1. `start model-1`, 2. `mid model-1` (half the text streamed and published), 3. `done model-1`,
4. `start call-a` (inside the tool), 5. `done call-a`, 6. `start model-2`, 7. `done model-2`.

In a worker (the side channel is set), the first request waits before line 2 until the test's consumers have read
events (the file `CONSUMERS_READY` next to the side channel exists): both were subscribed before the kill, one of
them has stopped in the middle of the request's first attempt.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import anyio
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

from durable_kernel import EventStreamTopic

from ._scripted import calls, text, turn
from .crash_agent import LOG_ENV, CrashDeps, side_channel, side_channel_line

__all__ = (
    'CONSUMERS_READY',
    'STREAM_CRASH_EXPECTED_OUTPUT',
    'STREAM_CRASH_KILL_POINTS',
    'STREAM_CRASH_PROMPT',
    'STREAM_CRASH_TOPIC',
    'stream_crash_agent',
)

STREAM_CRASH_TOPIC = EventStreamTopic('crash-events', batch_interval=timedelta(milliseconds=20))
STREAM_CRASH_PROMPT = 'Crunch and stream'
STREAM_CRASH_KILL_POINTS: dict[str, int] = {'mid_model_stream': 2, 'mid_tool': 4}
"""Side-channel lines to kill the worker at: inside the first model stream, inside the tool."""
CONSUMERS_READY = 'consumers-ready'
FIRST_WORDS = 3
"""Text chunks the first request streams (and publishes) before it waits for the consumers and the kill."""
STREAM_CRASH_EXPECTED_OUTPUT = 'the numbers are in: call-a=14'


def _step(messages: list[ModelMessage]) -> ModelResponse:
    if turn(messages) == 0:
        return ModelResponse(
            parts=[*text('let me crunch the numbers first').parts, *calls(('crunch', {'n': 2}, 'call-a')).parts]
        )
    results = [
        f'{part.tool_call_id}={part.content}'
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]
    return text(f'the numbers are in: {"+".join(results)}')


def _function(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return _step(messages)


async def _wait_for_consumers() -> None:
    log = os.environ.get(LOG_ENV)
    if not log:
        return  # the plain run in the test process
    ready = Path(log).with_name(CONSUMERS_READY)
    deadline = time.monotonic() + 120
    while not ready.exists() and time.monotonic() < deadline:
        await anyio.sleep(0.02)


async def _stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
    step = turn(messages) + 1
    response = _step(messages)
    with side_channel(f'model-{step}'):
        chunks = 0
        for index, part in enumerate(response.parts):
            if isinstance(part, TextPart):
                for position, word in enumerate(part.content.split(' ')):
                    yield word if position == 0 else f' {word}'
                    chunks += 1
                    if step == 1 and chunks == FIRST_WORDS:
                        await _wait_for_consumers()
                        # Several batch intervals: what was streamed so far is published before the kill point.
                        await anyio.sleep(0.3)
                        side_channel_line('mid', f'model-{step}')
            elif isinstance(part, ToolCallPart):
                yield {
                    index: DeltaToolCall(
                        name=part.tool_name, json_args=part.args_as_json_str(), tool_call_id=part.tool_call_id
                    )
                }


stream_crash_agent = Agent(
    FunctionModel(_function, stream_function=_stream, model_name='stream-crash'),
    name='stream_crash_agent',
    deps_type=CrashDeps,
)


@stream_crash_agent.tool
async def crunch(ctx: RunContext[CrashDeps], n: int) -> int:
    """Multiply `n` by the deps' factor, slowly enough to be killed inside."""
    with side_channel('call-a'):
        await anyio.sleep(0.3)
        return n * ctx.deps.factor
