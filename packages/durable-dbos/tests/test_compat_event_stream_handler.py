"""Compatibility with `pydantic_ai.durable_exec.dbos` (the reference) when the agent has an event stream handler:
with `function_tool_steps=False` our workflow records exactly the reference's steps, whatever the handler is.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dbos import SetWorkflowID

from durable_dbos import DBOSAgent
from durable_dbos.testing import workflow_step_names_async

from .handler_app import HANDLERS, build_plain_agent, expected_steps


@pytest.mark.anyio
@pytest.mark.parametrize('handler', list(HANDLERS))
async def test_the_steps_are_the_references_plus_tool_steps(
    handler: str, agent_name: str, tmp_path: Path, dbos_launch: Callable[[], None]
) -> None:
    """With `function_tool_steps=False` a run records exactly the reference's steps, so either one recovers the other's
    workflows; by default the tool steps come in addition."""
    from pydantic_ai.durable_exec.dbos import DBOSAgent as ReferenceDBOSAgent

    log = tmp_path / 'calls.log'
    handler_function = HANDLERS[handler]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # pydantic-ai 2.x deprecates the reference's wrapper agent
        reference: Any = ReferenceDBOSAgent(
            build_plain_agent(f'{agent_name}_r', crash=False, log=log), event_stream_handler=handler_function
        )
    ours = DBOSAgent(build_plain_agent(agent_name, crash=False, log=log), event_stream_handler=handler_function)
    compatible = DBOSAgent(
        build_plain_agent(f'{agent_name}_c', crash=False, log=log),
        event_stream_handler=handler_function,
        function_tool_steps=False,
    )
    dbos_launch()

    steps: dict[str, list[str]] = {}
    for agent, name in [(reference, f'{agent_name}_r'), (ours, agent_name), (compatible, f'{agent_name}_c')]:
        workflow_id = str(uuid.uuid4())
        with SetWorkflowID(workflow_id):
            assert (await agent.run('add things', deps={'log': str(log)})).output == '3 7'
        steps[name] = [step.replace(name, '{name}') for step in await workflow_step_names_async(workflow_id)]

    without_tools = [step for step in expected_steps('{name}', handler) if '.call_tool.' not in step]
    assert steps[f'{agent_name}_r'] == steps[f'{agent_name}_c'] == without_tools
    assert steps[agent_name] == expected_steps('{name}', handler)
