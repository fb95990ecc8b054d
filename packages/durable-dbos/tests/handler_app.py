"""A DBOS app with an event stream handler, for the handler tests.

`python handler_app.py URL NAME WORKFLOW_ID HANDLER LOG` (HANDLER: `step`, `plain` or `none`) starts the agent's
workflow on a fresh database and is killed with SIGKILL inside the second model request; the test process recovers
it with the same agent (`build_agent(name, handler, crash=False)`). Model requests, tool calls and the events the
handler sees append lines to LOG, the side channel the tests count.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any

from dbos import DBOS, SetWorkflowID
from pydantic_ai import Agent, RunContext
from pydantic_ai.agent import EventStreamHandler
from pydantic_ai.messages import AgentStreamEvent, ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

from durable_dbos import DBOSAgent
from durable_dbos.testing import dbos_session

# A builtin type (the run's log file), so that the killed script (`__main__`) and the recovering test process unpickle
# the recorded deps alike.
Deps = dict[str, str]


def note(log: str | Path, line: str) -> None:
    with Path(log).open('a') as file:
        file.write(line + '\n')


# pydantic-ai's own DBOS examples decorate the handler as a step (it does I/O): each call is then a step named
# `step_handler`. Module level, so that it is registered before `DBOS.launch()` in both processes.
@DBOS.step()
async def step_handler(ctx: RunContext[Deps], stream: AsyncIterable[AgentStreamEvent]) -> None:
    async for event in stream:
        note(ctx.deps['log'], f'event {event.event_kind}')


async def plain_handler(ctx: RunContext[Deps], stream: AsyncIterable[AgentStreamEvent]) -> None:
    async for event in stream:
        note(ctx.deps['log'], f'event {event.event_kind}')


HANDLERS: dict[str, EventStreamHandler[Deps] | None] = {'step': step_handler, 'plain': plain_handler, 'none': None}


def expected_steps(name: str, handler: str) -> list[str]:
    """What the workflow records: the reference's steps (a step handler records one step per event it is given in
    workflow code), plus our tool steps, which run between the call events and the result events."""
    request = f'{name}__model.request' if handler == 'none' else f'{name}__model.request_stream'
    tool = f'{name}__toolset__<agent>.call_tool.add'
    per_event = ['step_handler'] * 2 if handler == 'step' else []
    return [request, *per_event, tool, tool, *per_event, request]


def build_agent(name: str, handler: str, *, crash: bool, log: str | Path) -> DBOSAgent[Deps, str]:
    return DBOSAgent(build_plain_agent(name, crash=crash, log=log), event_stream_handler=HANDLERS[handler])


def build_plain_agent(name: str, *, crash: bool, log: str | Path) -> Agent[Deps, str]:
    """Turn 1 asks for `add(1, 2)` and `add(3, 4)`; turn 2 (where the crashing process dies) answers with the sums."""

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returned = [p for m in messages for p in m.parts if isinstance(p, ToolReturnPart)]
        if not returned:
            note(log, 'model 1')
            return ModelResponse(
                parts=[
                    ToolCallPart('add', {'a': 1, 'b': 2}, tool_call_id='c1'),
                    ToolCallPart('add', {'a': 3, 'b': 4}, tool_call_id='c2'),
                ]
            )
        note(log, 'model 2')
        if crash:
            os.kill(os.getpid(), signal.SIGKILL)
        return ModelResponse(parts=[TextPart(' '.join(str(p.content) for p in returned))])

    async def stream_answer(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
        for index, part in enumerate(answer(messages, info).parts):
            if isinstance(part, TextPart):
                yield part.content
            elif isinstance(part, ToolCallPart):
                yield {
                    index: DeltaToolCall(
                        name=part.tool_name, json_args=part.args_as_json_str(), tool_call_id=part.tool_call_id
                    )
                }

    agent = Agent(FunctionModel(answer, stream_function=stream_answer), name=name, deps_type=Deps)

    @agent.tool
    def add(ctx: RunContext[Deps], a: int, b: int) -> int:
        note(ctx.deps['log'], f'tool add {a} {b}')
        return a + b

    return agent


def main(argv: list[str]) -> Any:
    url, name, workflow_id, handler, log = argv
    with dbos_session(url) as launch:
        agent = build_agent(name, handler, crash=True, log=log)
        launch()
        with SetWorkflowID(workflow_id):
            asyncio.run(agent.run('add things', deps={'log': log}))
        raise AssertionError('the second model request must have killed the process')


if __name__ == '__main__':
    main(sys.argv[1:])
