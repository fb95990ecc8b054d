"""Agents with a workspace (pydantic-ai 2.68+) for test_workspaces.py, imported through the workflow sandbox.

`LocalWorkspace(...)` touches the filesystem when it is built, which the sandbox refuses in a workflow's module: the
workflows import this module with `workflow.unsafe.imports_passed_through()`.
"""

from __future__ import annotations

import importlib
import importlib.util
import tempfile
from pathlib import Path
from typing import Any, cast

from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, ToolCallPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.output import ToolOutput

from durable_temporal import TemporalAgent, TemporalDurability

HAS_WORKSPACES = importlib.util.find_spec('pydantic_ai.workspaces') is not None

WORKSPACE_DIR = Path(tempfile.gettempdir()) / 'durable-temporal-workspace-test'
"""The `LocalWorkspace`'s directory: a fixed one, as the agents are built when this module is imported."""


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
    """`tool` calls the tool first; every case ends with the output tool."""
    if _prompt(messages) == 'tool' and len(messages) == 1:
        return ModelResponse(parts=[ToolCallPart('read_note', {})])
    return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, {'text': 'done'})])


async def note_instructions(ctx: RunContext[None]) -> str:
    """A hook in workflow code: reads the workspace only in the `hook` case."""
    if ctx.prompt == 'hook':
        return await _workspace(ctx).read_text('note.txt')
    return 'no note'


async def finish(ctx: RunContext[None], text: str) -> str:
    """The output function (workflow code): reads the workspace only in the `output` case."""
    if ctx.prompt == 'output':
        return f'{text}: {await _workspace(ctx).read_text("note.txt")}'
    return text


async def read_note(ctx: RunContext[None]) -> str:
    """A tool (an activity): reads the workspace inside its unit."""
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


AGENTS: dict[str, Any] = {}
"""The agents by form: the capability form with a `LocalWorkspace`, without one (for `run(workspace=...)`), the wrapper."""

if HAS_WORKSPACES:
    WORKSPACE_DIR.mkdir(exist_ok=True)
    (WORKSPACE_DIR / 'note.txt').write_text('from the workspace')
    _local: Any = importlib.import_module('pydantic_ai.capabilities').LocalWorkspace
    AGENTS.update(
        {
            'capability': _agent('ws_cap', _local(WORKSPACE_DIR), TemporalDurability()),
            'capability_plain': _agent('ws_cap_plain', TemporalDurability()),
            'wrapper': TemporalAgent(_agent('ws_wrap', _local(WORKSPACE_DIR))),
        }
    )
