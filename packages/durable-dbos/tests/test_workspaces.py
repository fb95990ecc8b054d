"""pydantic-ai 2.68+'s workspaces in a DBOS workflow: workspace I/O in workflow code is refused, steps keep it.

A workspace's calls from workflow code (instructions, an output function, a function tool that is not a step) would
run outside any step: unrecorded, and again when DBOS recovers the workflow. Ours refuse them with a `UserError` that
says what to do instead, in both forms, whether the workspace comes from a `LocalWorkspace` capability or (capability
form) `run(workspace=...)`; a tool that runs as a step keeps using it. Outside a workflow nothing changes.
"""

from __future__ import annotations

import importlib
import importlib.util
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from dbos import DBOS, SetWorkflowID
from pydantic_ai import Agent, RunContext
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, ToolCallPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.output import ToolOutput

from durable_dbos import DBOSAgent, DBOSDurability
from durable_dbos.testing import workflow_step_names_async

HAS_WORKSPACES = importlib.util.find_spec('pydantic_ai.workspaces') is not None

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not HAS_WORKSPACES, reason='workspaces (`pydantic_ai.workspaces`) exist from pydantic-ai 2.68'),
]


def _prompt(messages: list[ModelMessage]) -> str:
    for message in messages:
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                    return part.content
    return ''


def _workspace(ctx: RunContext[None]) -> Any:
    # `Any`: the type checker sees the locked pydantic-ai 1.107, whose run context has no workspace.
    return cast(Any, ctx).workspace


def workspace_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    if _prompt(messages) == 'tool' and len(messages) == 1:
        return ModelResponse(parts=[ToolCallPart('read_note', {})])
    return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, {'text': 'done'})])


async def note_instructions(ctx: RunContext[None]) -> str:
    if ctx.prompt == 'hook':
        return await _workspace(ctx).read_text('note.txt')
    return 'no note'


async def finish(ctx: RunContext[None], text: str) -> str:
    if ctx.prompt == 'output':
        return f'{text}: {await _workspace(ctx).read_text("note.txt")}'
    return text


async def read_note(ctx: RunContext[None]) -> str:
    return await _workspace(ctx).read_text('note.txt')


def _agent(name: str, *capabilities: Any) -> Agent[None, str]:
    agent = Agent(
        FunctionModel(workspace_model),
        name=name,
        instructions=note_instructions,
        output_type=ToolOutput(finish),
        capabilities=list(capabilities),
    )
    agent.tool(read_note)
    return agent


REFUSED = "The run's workspace (`ctx.workspace`) cannot be used in the code of a DBOS workflow"


async def _outcome(
    agent_name: str, dbos_launch: Callable[[], None], tmp_path: Path, form: str, prompt: str, *, keyword: bool = False
) -> tuple[str, list[str]]:
    """Run `prompt` in a workflow (the user's for the capability forms, the `DBOSAgent`'s own for `wrapper`)."""
    (tmp_path / 'note.txt').write_text('from the workspace')
    local: Any = importlib.import_module('pydantic_ai.capabilities').LocalWorkspace
    backend: Any = importlib.import_module('pydantic_ai.workspaces').LocalWorkspaceBackend
    workflow_id = str(uuid.uuid4())
    if form == 'wrapper':
        dbos_agent = DBOSAgent(_agent(agent_name, local(tmp_path)))
        dbos_launch()
        try:
            with SetWorkflowID(workflow_id):
                outcome = 'ok: ' + (await dbos_agent.run(prompt)).output
        except UserError as error:
            outcome = str(error)
        return outcome, await workflow_step_names_async(workflow_id)
    durability = DBOSDurability[None](function_tool_steps=form == 'capability_steps')
    agent = _agent(agent_name, *([durability] if keyword else [local(tmp_path), durability]))

    @DBOS.workflow(name=f'{agent_name}.user_workflow')
    async def user_workflow(prompt: str) -> str:
        kwargs: dict[str, Any] = {'workspace': backend(str(tmp_path))} if keyword else {}
        try:
            return 'ok: ' + (await agent.run(prompt, **kwargs)).output
        except UserError as error:
            return str(error)

    dbos_launch()
    with SetWorkflowID(workflow_id):
        outcome = await user_workflow(prompt)
    return outcome, await workflow_step_names_async(workflow_id)


@pytest.mark.parametrize('form', ['capability', 'capability_steps', 'wrapper'])
@pytest.mark.parametrize('prompt', ['hook', 'output'])
async def test_workspace_calls_in_workflow_code_are_refused(
    agent_name: str, dbos_launch: Callable[[], None], tmp_path: Path, form: str, prompt: str
) -> None:
    outcome, _ = await _outcome(agent_name, dbos_launch, tmp_path, form, prompt)
    assert outcome.startswith(REFUSED)
    assert 'Workspaces are not durable in this release' in outcome
    advice = '`DBOSDurability(function_tool_steps=True)`' if form != 'wrapper' else 'each tool call of a `DBOSAgent`'
    assert advice in outcome


async def test_a_function_tool_that_is_workflow_code_is_refused(
    agent_name: str, dbos_launch: Callable[[], None], tmp_path: Path
) -> None:
    # `DBOSDurability()` runs function tools as workflow code (as pydantic-ai 2.x's does): their I/O is unrecorded.
    outcome, _ = await _outcome(agent_name, dbos_launch, tmp_path, 'capability', 'tool')
    assert outcome.startswith(REFUSED)


@pytest.mark.parametrize('form', ['capability_steps', 'wrapper'])
async def test_a_tool_step_uses_the_workspace(
    agent_name: str, dbos_launch: Callable[[], None], tmp_path: Path, form: str
) -> None:
    outcome, steps = await _outcome(agent_name, dbos_launch, tmp_path, form, 'tool')
    assert outcome == 'ok: done'
    assert f'{agent_name}__toolset__<agent>.call_tool.read_note' in steps


@pytest.mark.parametrize('prompt', ['hook', 'output', 'tool'])
async def test_the_workspace_keyword_is_refused_in_workflow_code_too(
    agent_name: str, dbos_launch: Callable[[], None], tmp_path: Path, prompt: str
) -> None:
    outcome, _ = await _outcome(agent_name, dbos_launch, tmp_path, 'capability', prompt, keyword=True)
    assert outcome.startswith(REFUSED)


async def test_a_run_without_workspace_calls_is_unchanged(
    agent_name: str, dbos_launch: Callable[[], None], tmp_path: Path
) -> None:
    outcome, steps = await _outcome(agent_name, dbos_launch, tmp_path, 'capability', 'none')
    assert outcome == 'ok: done'
    assert steps == [f'{agent_name}__model.request']


async def test_outside_a_workflow_the_workspace_works(
    agent_name: str, dbos_launch: Callable[[], None], tmp_path: Path
) -> None:
    (tmp_path / 'note.txt').write_text('from the workspace')
    local: Any = importlib.import_module('pydantic_ai.capabilities').LocalWorkspace
    agent = _agent(agent_name, local(tmp_path), DBOSDurability[None]())
    dbos_launch()
    assert (await agent.run('output')).output == 'done: from the workspace'
