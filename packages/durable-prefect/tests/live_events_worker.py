"""A worker process for the live-events crash test: `start` dies hard in the middle of a model stream, `resume` re-runs.

`LIVE_EVENTS_FORM` picks the form: `wrapper` (a `PrefectAgent`, a subflow of the parent flow, publishing to the
parent's flow run) or `capability` (`PrefectDurability` in the parent flow).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

from _resume_kit import PHASE, log, run_phase
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

from durable_prefect import PrefectAgent, PrefectDurability

FORM = os.environ['LIVE_EVENTS_FORM']
TOPIC = 'agent-events'
DIE_AT = 15


async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
    returned = any(isinstance(part, ToolReturnPart) for message in messages for part in message.parts)
    log(f'model-{2 if returned else 1}')
    if not returned:
        for index in range(5):
            yield f'a{index} '
        yield {0: DeltaToolCall(name='step', json_args='{}', tool_call_id='call-1')}
        return
    for index in range(30):
        await asyncio.sleep(0.02)
        if index == DIE_AT and PHASE == 'start':
            await asyncio.sleep(0.5)  # the batches streamed so far are published
            os._exit(17)  # the process dies hard in the model request task: no state is reported, no cleanup runs
        yield f'b{index} '


capabilities = [PrefectDurability[None](event_stream_topic=TOPIC)] if FORM == 'capability' else []
agent = Agent(FunctionModel(stream_function=stream), name=f'live-crash-{FORM}', capabilities=capabilities)


@agent.tool_plain
def step() -> str:
    log('tool-step')
    return 'stepped'


prefect_agent = PrefectAgent(agent, event_stream_topic=TOPIC)


async def run_agent() -> str:
    if FORM == 'capability':
        return (await agent.run('go')).output
    return (await prefect_agent.run('go')).output


if __name__ == '__main__':
    run_phase(f'live-crash-parent-{FORM}', run_agent)
