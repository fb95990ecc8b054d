"""The function tool a call unit finds (`called_function_tool`): built from the workflow's definition, or refused."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic_ai import FunctionToolset, RunContext, Tool
from pydantic_ai.exceptions import UserError
from pydantic_ai.models.test import TestModel
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.usage import RunUsage

from durable_kernel import called_function_tool

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return 'asyncio'


def context() -> RunContext[None]:
    return RunContext(deps=None, model=TestModel(), usage=RunUsage())


async def test_the_tool_is_built_from_the_workflows_definition_without_preparing_again() -> None:
    prepared: list[str] = []

    async def prepare(ctx: RunContext[None], tool_def: ToolDefinition) -> ToolDefinition:
        prepared.append(tool_def.name)
        return dataclasses.replace(tool_def, description='prepared in the unit')

    async def add(a: int, b: int) -> int:
        return a + b

    toolset = FunctionToolset([Tool(add, prepare=prepare)], id='math')
    in_workflow = dataclasses.replace(
        (await FunctionToolset([Tool(add)], id='math').get_tools(context()))['add'].tool_def,
        description='as the model saw it',
    )
    tool = await called_function_tool(toolset, context(), 'add', tool_def=in_workflow, where='on this worker')
    assert tool.tool_def.description == 'as the model saw it'
    assert prepared == []
    assert await toolset.call_tool('add', {'a': 1, 'b': 2}, context(), tool) == 3

    # Without a definition (a call an earlier release scheduled) the toolset is listed, and `prepare` runs.
    listed = await called_function_tool(toolset, context(), 'add', tool_def=None, where='on this worker')
    assert listed.tool_def.description == 'prepared in the unit'
    assert prepared == ['add']


@pytest.mark.parametrize('with_definition', [True, False])
async def test_a_removed_tool_is_refused(with_definition: bool) -> None:
    async def add(a: int, b: int) -> int:
        return a + b  # pragma: no cover - removed

    gone = (await FunctionToolset([Tool(add)], id='math').get_tools(context()))['add'].tool_def
    with pytest.raises(
        UserError,
        match=r"^Tool 'add' is not in toolset 'math' in this process\. Tools cannot be removed or renamed while "
        r'workflows that use them are running: keep the old tool until they finish\.$',
    ):
        await called_function_tool(
            FunctionToolset([], id='math'),
            context(),
            'add',
            tool_def=gone if with_definition else None,
            where='in this process',
        )
