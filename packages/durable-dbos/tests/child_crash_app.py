"""A DBOS app for the child-workflow crash tests: `python child_crash_app.py URL LOG NAME WORKFLOW_ID FORM`.

FORM is `wrapper`, `capability` or `capability-sequential` (ours), or `reference` (pydantic-ai 2.68+'s own `DBOSDurability`,
sequential) or `reference-parallel`; with `-reversed` appended, call `c1` waits before its child starts, so `c2`'s child
takes the earlier step position (a recording whose children are out of call order).

Starts an agent run whose two parallel tool calls run as child workflows, then dies (`os._exit(17)`) in the second model
request, after both children completed. The test process recovers the run with the same agent (`build(..., crash=False)`).
Every model request and tool body appends a line to LOG, the side channel the test counts.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbos import DBOS, SetWorkflowID
from pydantic_ai import Agent, Tool
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.toolsets import FunctionToolset

from durable_dbos import ChildWorkflowConfig, DBOSAgent, DBOSDurability
from durable_dbos.testing import dbos_session

CHILD = {'dbos': {'child_workflow': ChildWorkflowConfig(workflow_timeout_sec=60)}}


@dataclass
class SecondCallFirst(AbstractCapability[Any]):
    """Call `c1` waits in the parent's workflow code before its child starts: `c2`'s child takes the earlier position."""

    async def before_tool_execute(self, ctx: Any, *, call: ToolCallPart, tool_def: Any, args: Any) -> Any:
        if call.tool_call_id == 'c1':
            await asyncio.sleep(1.0)  # not recorded: a recovery does not wait
        return args


def build(name: str, log: Path, crash: bool, form: str) -> Callable[[str], Coroutine[Any, Any, str]]:
    """The agent, made durable in `form`; returns what starts a run (a workflow either way)."""

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
        # Each result with the call it answers: a call given another call's child would show.
        return ModelResponse(parts=[TextPart(' '.join(f'{p.tool_call_id}={p.content}' for p in returned))])

    async def add(a: int, b: int) -> str:
        note(f'tool add {a} {b}')
        # Workflow code of the child: it knows its own id and its parent's.
        return f'{a + b} in {DBOS.workflow_id}'

    toolset = FunctionToolset([Tool(add, metadata=CHILD)], id='math')
    capabilities: list[AbstractCapability[Any]] = [SecondCallFirst()] if form.endswith('-reversed') else []
    form = form.removesuffix('-reversed')
    if form == 'wrapper':
        dbos_agent = DBOSAgent(Agent(FunctionModel(model), name=name, toolsets=[toolset], capabilities=capabilities))

        async def run_wrapper(prompt: str) -> str:
            return (await dbos_agent.run(prompt)).output

        return run_wrapper
    if form in ('reference', 'reference-parallel'):  # pydantic-ai 2.68+'s own `DBOSDurability`, whose run ours recovers
        import importlib

        reference: Any = importlib.import_module('pydantic_ai.durable_exec.dbos')
        mode = 'sequential' if form == 'reference' else 'parallel'
        durability = reference.DBOSDurability(parallel_execution_mode=mode)
        agent = Agent(FunctionModel(model), name=name, toolsets=[toolset], capabilities=[*capabilities, durability])
    else:
        mode = 'sequential' if form == 'capability-sequential' else 'parallel_ordered_events'
        agent = Agent(
            FunctionModel(model),
            name=name,
            toolsets=[toolset],
            capabilities=[*capabilities, DBOSDurability(parallel_execution_mode=mode)],
        )
        # Bound before launch (pydantic-ai 1.107 binds on the first run otherwise): its child workflow is registered now.
        DBOSDurability.from_agent(agent)

    @DBOS.workflow(name=f'{name}.user_workflow')
    async def user_workflow(prompt: str) -> str:
        return (await agent.run(prompt)).output

    return user_workflow


def main() -> None:
    url, log, name, workflow_id, form = sys.argv[1:6]
    with dbos_session(url) as launch:
        start = build(name, Path(log), crash=True, form=form)
        launch()
        with SetWorkflowID(workflow_id):
            asyncio.run(start('add things'))
        raise AssertionError('the model request must have killed the process')


if __name__ == '__main__':
    main()
