"""A DBOS app for the live-events crash test: `python live_events_app.py URL NAME WORKFLOW_ID wrapper|capability`.

Starts an agent run that publishes to the topic `events` on a fresh database: the first model response calls two tools
in parallel, the second streams `DELTAS` text deltas and the process SIGKILLs itself halfway, once the model step has
published the first half. The test process then recovers the workflow with the same agent (`build(..., crash=False)`)
and reads the stream.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

from dbos import DBOS, SetWorkflowID
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

from durable_dbos import DBOSAgent, DBOSDurability, EventStreamTopic
from durable_dbos.testing import dbos_session

TOPIC = EventStreamTopic('events', batch_interval=timedelta(milliseconds=50))
DELTAS = 10
TEXT = ''.join(f't{i} ' for i in range(DELTAS))


def build(name: str, form: str, *, crash: bool) -> tuple[Any, Callable[[], Awaitable[Any]]]:
    """The agent and a function running it (in a workflow); build before `DBOS.launch()`."""

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
        if not any(isinstance(part, ToolReturnPart) for message in messages for part in message.parts):
            yield {
                0: DeltaToolCall(name='add', json_args='{"a": 1, "b": 2}', tool_call_id='c1'),
                1: DeltaToolCall(name='add', json_args='{"a": 3, "b": 4}', tool_call_id='c2'),
            }
            return
        for index in range(DELTAS):
            yield f't{index} '
            if crash and index == DELTAS // 2 - 1:
                await asyncio.sleep(0.5)  # the batcher publishes the first half
                os.kill(os.getpid(), signal.SIGKILL)

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:  # pragma: no cover - streamed
        return ModelResponse(parts=[TextPart(TEXT), ToolCallPart('add', {'a': 0, 'b': 0})])

    def add(a: int, b: int) -> int:
        return a + b

    model = FunctionModel(answer, stream_function=stream)
    if form == 'wrapper':
        durable = DBOSAgent(Agent(model, name=name, tools=[add]), event_stream_topic=TOPIC)

        async def run_wrapper() -> Any:
            return await durable.run('add things')

        return durable, run_wrapper
    capability = DBOSDurability[None](event_stream_topic=TOPIC)
    agent = Agent(model, name=name, tools=[add], capabilities=[capability])

    @DBOS.workflow(name=f'{name}.user_workflow')
    async def user_workflow() -> Any:
        return await agent.run('add things')

    return capability, user_workflow


def main() -> None:
    url, name, workflow_id, form = sys.argv[1:5]
    with dbos_session(url) as launch:
        _, run = build(name, form, crash=True)
        launch()

        async def start() -> None:
            with SetWorkflowID(workflow_id):
                await run()

        asyncio.run(start())
        raise AssertionError('the model request must have killed the process')


if __name__ == '__main__':
    main()
