"""A worker process for the crash test: `start` runs a flow that dies hard in a tool; `resume` re-runs that flow run.

Every model request and tool call appends a line to the log file, so the test can count what ran in which process.
"""

from __future__ import annotations

import os

from _resume_kit import PHASE, log, run_phase
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from durable_prefect import PrefectAgent

STEPS = int(os.environ.get('RESUME_TEST_STEPS', '0'))
"""With N > 0, a long run: N tool calls `n1`..`nN`, one per turn, the process dying in the last one."""
CRASH_IN = f'n{STEPS}' if STEPS else 'b'


def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    done = [p for m in messages if isinstance(m, ModelRequest) for p in m.parts if isinstance(p, ToolReturnPart)]
    log(f'model-{len(done) + 1}')
    if STEPS:
        if len(done) < STEPS:
            return ModelResponse(
                parts=[ToolCallPart('step', {'name': f'n{len(done) + 1}'}, tool_call_id=f'call-{len(done)}')]
            )
        return ModelResponse(parts=[TextPart(f'{len(done)} steps')])
    if len(done) == 0:
        return ModelResponse(parts=[ToolCallPart('step', {'name': 'a'}, tool_call_id='call-a')])
    if len(done) == 1:
        return ModelResponse(parts=[ToolCallPart('step', {'name': 'b'}, tool_call_id='call-b')])
    return ModelResponse(parts=[TextPart(' '.join(str(p.content) for p in done))])


agent = Agent(FunctionModel(respond), name='crashing')


@agent.tool_plain
def step(name: str) -> str:
    log(f'tool-{name}')
    if name == CRASH_IN and PHASE == 'start':
        os._exit(17)  # the process dies hard: no state is reported, no cleanup runs
    return f'did {name}'


prefect_agent = PrefectAgent(agent)


async def run_agent() -> str:
    return (await prefect_agent.run('go')).output


if __name__ == '__main__':
    run_phase('crash-test-parent', run_agent)
