"""A worker process for the crash test: `start` runs a flow that dies hard in a tool; `resume` re-runs that flow run.

Every model request and tool call appends a line to the log file, so the test can count what ran in which process.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from uuid import UUID

import prefect.settings
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.flow_engine import run_flow
from prefect.settings import temporary_settings
from prefect.states import Pending
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from durable_prefect import PrefectAgent

LOG = Path(os.environ['RESUME_TEST_LOG'])
PHASE = os.environ['RESUME_TEST_PHASE']
STEPS = int(os.environ.get('RESUME_TEST_STEPS', '0'))
"""With N > 0, a long run: N tool calls `n1`..`nN`, one per turn, the process dying in the last one."""
CRASH_IN = f'n{STEPS}' if STEPS else 'b'


def log(line: str) -> None:
    with LOG.open('a') as file:
        file.write(f'{PHASE}:{line}\n')


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


@flow(name='crash-test-parent')
async def parent() -> str:
    flow_run = FlowRunContext.get()
    assert flow_run is not None
    assert flow_run.flow_run is not None
    Path(os.environ['RESUME_TEST_FLOW_RUN']).write_text(str(flow_run.flow_run.id))
    return (await prefect_agent.run('go')).output


async def resume(flow_run_id: UUID) -> str:
    async with get_client() as client:
        # The dead process left the flow run 'Running'; an operator (or a worker) reschedules it.
        await client.set_flow_run_state(flow_run_id, Pending(), force=True)
        flow_run = await client.read_flow_run(flow_run_id)
    return await run_flow(parent, flow_run=flow_run)  # pyright: ignore[reportReturnType,reportGeneralTypeIssues,reportUnknownVariableType]


if __name__ == '__main__':
    heartbeat = getattr(prefect.settings, 'PREFECT_FLOWS_HEARTBEAT_FREQUENCY', None)  # Prefect 3.6+ only
    with temporary_settings({heartbeat: None} if heartbeat is not None else {}):
        if PHASE == 'start':
            asyncio.run(parent())
            sys.exit(0)
        print(asyncio.run(resume(UUID(Path(os.environ['RESUME_TEST_FLOW_RUN']).read_text()))))
