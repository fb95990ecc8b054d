"""pydantic-ai 2.68+'s workspaces in a Prefect flow: workspace I/O in flow code is refused, tool tasks keep it.

A workspace's calls from flow code (instructions, an output function) would run outside any task: unrecorded, and
again when the flow run is retried or resumed. Ours refuse them with a `UserError` that says what to do instead, in
both forms, whether the workspace comes from a `LocalWorkspace` capability or (capability form) `run(workspace=...)`;
a tool call is a task and keeps using it. Outside a flow nothing changes.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any, cast

import pytest
from prefect import flow
from pydantic_ai import Agent, RunContext
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, ToolCallPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.output import ToolOutput

from durable_prefect import PrefectAgent, PrefectDurability

HAS_WORKSPACES = importlib.util.find_spec('pydantic_ai.workspaces') is not None

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.usefixtures('prefect_server'),
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


REFUSED = "The run's workspace (`ctx.workspace`) cannot be used in the code of a Prefect flow"


async def _outcome(tmp_path: Path, form: str, prompt: str, *, keyword: bool = False) -> str:
    """Run `prompt` in a flow (the user's for the capability form, the `PrefectAgent`'s own for `wrapper`)."""
    (tmp_path / 'note.txt').write_text('from the workspace')
    local: Any = importlib.import_module('pydantic_ai.capabilities').LocalWorkspace
    backend: Any = importlib.import_module('pydantic_ai.workspaces').LocalWorkspaceBackend
    name = f'workspace-{form}-{prompt}-{"keyword" if keyword else "capability"}'
    if form == 'wrapper':
        prefect_agent = PrefectAgent(_agent(name, local(tmp_path)))
        try:
            return 'ok: ' + (await prefect_agent.run(prompt)).output
        except UserError as error:
            return str(error)
    agent = _agent(name, *([PrefectDurability()] if keyword else [local(tmp_path), PrefectDurability()]))

    @flow
    async def user_flow(prompt: str) -> str:
        kwargs: dict[str, Any] = {'workspace': backend(str(tmp_path))} if keyword else {}
        try:
            return 'ok: ' + (await agent.run(prompt, **kwargs)).output
        except UserError as error:
            return str(error)

    return await user_flow(prompt)


@pytest.mark.parametrize('form', ['capability', 'wrapper'])
@pytest.mark.parametrize('prompt', ['hook', 'output'])
async def test_workspace_calls_in_flow_code_are_refused(tmp_path: Path, form: str, prompt: str) -> None:
    outcome = await _outcome(tmp_path, form, prompt)
    assert outcome.startswith(REFUSED)
    assert 'Workspaces are not durable in this release' in outcome
    assert 'Do the workspace work in a tool (each tool call is a task), or outside a Prefect flow.' in outcome


@pytest.mark.parametrize('form', ['capability', 'wrapper'])
async def test_a_tool_task_uses_the_workspace(tmp_path: Path, form: str) -> None:
    assert await _outcome(tmp_path, form, 'tool') == 'ok: done'


@pytest.mark.parametrize('prompt', ['hook', 'output'])
async def test_the_workspace_keyword_is_refused_in_flow_code_too(tmp_path: Path, prompt: str) -> None:
    assert (await _outcome(tmp_path, 'capability', prompt, keyword=True)).startswith(REFUSED)


async def test_the_workspace_keyword_reaches_a_tool_task(tmp_path: Path) -> None:
    assert await _outcome(tmp_path, 'capability', 'tool', keyword=True) == 'ok: done'


async def test_outside_a_flow_the_workspace_works(tmp_path: Path) -> None:
    (tmp_path / 'note.txt').write_text('from the workspace')
    local: Any = importlib.import_module('pydantic_ai.capabilities').LocalWorkspace
    agent = _agent('workspace-outside', local(tmp_path), PrefectDurability())
    assert (await agent.run('output')).output == 'done: from the workspace'
