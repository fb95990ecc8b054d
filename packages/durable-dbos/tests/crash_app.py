"""A DBOS app for the crash-recovery tests: `python crash_app.py URL LOG NAME WORKFLOW_ID run|run_sync` starts the workflow on a
fresh database and dies (`os._exit(17)`) inside the second model request. The test process then recovers it with the
same agent (`build_agent(..., crash=False)`). Every model request and tool call appends a line to LOG, the side
channel the test counts.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from dbos import SetWorkflowID
from pydantic_ai import Agent, RunContext
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from durable_dbos import DBOSAgent
from durable_dbos.testing import dbos_session

# Run deps are a workflow input, pickled by DBOS and given back to the recovered run. A builtin type, so that the
# crashing script (`__main__`) and the recovering test process unpickle them alike.
Deps = dict[str, int]


def build_agent(name: str, log: Path, crash: bool) -> DBOSAgent[Deps, str]:
    return DBOSAgent(build_plain_agent(name, log, crash))


def build_plain_agent(
    name: str, log: Path, crash: bool, capabilities: Sequence[AbstractCapability[Deps]] = ()
) -> Agent[Deps, str]:
    def note(line: str) -> None:
        with log.open('a') as file:
            file.write(line + '\n')

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returned = [p for m in messages for p in m.parts if isinstance(p, ToolReturnPart)]
        if not returned:
            note('model 1')
            return ModelResponse(
                parts=[
                    ToolCallPart('add', {'a': 1, 'b': 2}, tool_call_id='c1'),
                    ToolCallPart('add', {'a': 3, 'b': 4}, tool_call_id='c2'),
                ]
            )
        note('model 2')
        if crash:
            os._exit(17)
        results = ' '.join(str(p.content) for p in returned)
        return ModelResponse(parts=[TextPart(f'{results} ({info.instructions})')])

    agent = Agent(FunctionModel(model), name=name, deps_type=Deps, capabilities=list(capabilities))

    @agent.instructions
    def base_instructions(ctx: RunContext[Deps]) -> str:
        return f'base {ctx.deps["base"]}'

    @agent.tool_plain
    def add(a: int, b: int) -> int:
        note(f'tool add {a} {b}')
        return a + b

    return agent


def main() -> None:
    url, log, name, workflow_id, entry_point = sys.argv[1:6]
    with dbos_session(url) as launch:
        agent = build_agent(name, Path(log), crash=True)
        launch()
        with SetWorkflowID(workflow_id):
            if entry_point == 'run_sync':
                agent.run_sync('add things', deps={'base': 10})
            else:
                asyncio.run(agent.run('add things', deps={'base': 10}))
        raise AssertionError('the model request must have killed the process')


if __name__ == '__main__':
    main()
