"""A dynamic toolset built inside a unit (`_dynamic_toolsets.py`), with a plain pydantic-ai run context: no engine."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic_ai import FunctionToolset, RunContext, Tool
from pydantic_ai.exceptions import ModelRetry, UserError
from pydantic_ai.messages import InstructionPart
from pydantic_ai.models.test import TestModel
from pydantic_ai.toolsets import AbstractToolset, WrapperToolset
from pydantic_ai.usage import RunUsage

from durable_kernel import (
    ARGS_VALIDATOR_UNITS,
    DynamicToolset,
    built_dynamic_tool,
    list_dynamic_toolset,
    recordable_instructions,
    validate_tool_arguments,
    validates_args_in_unit,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return 'asyncio'


def context() -> RunContext[None]:
    return RunContext(deps=None, model=TestModel(), usage=RunUsage())


class Entered(WrapperToolset[Any]):
    """Counts how often the toolset the function built is entered and left."""

    log: list[str]

    def __init__(self, wrapped: AbstractToolset[Any], log: list[str]) -> None:
        super().__init__(wrapped)
        self.log = log

    async def __aenter__(self) -> Entered:
        self.log.append('enter')
        return self

    async def __aexit__(self, *args: Any) -> bool | None:
        self.log.append('exit')
        return None


def add(a: int, b: int) -> int:
    return a + b


def dynamic(builds: list[int], log: list[str], *, tools: list[Any] | None = None) -> DynamicToolset[None]:
    """A dynamic toolset whose function records each build and returns `tools` (default: `add`)."""

    def build(ctx: RunContext[None]) -> AbstractToolset[None]:
        builds.append(ctx.run_step)
        return Entered(FunctionToolset([add] if tools is None else tools), log)

    return DynamicToolset(build, id='dyn')


async def test_the_called_tool_is_found_in_the_toolset_built_and_entered_for_the_unit() -> None:
    builds: list[int] = []
    log: list[str] = []
    ctx = context()
    async with built_dynamic_tool(dynamic(builds, log), ctx, 'add', where='when built inside the test') as (
        built,
        tool,
    ):
        assert log == ['enter']
        assert tool.tool_def.name == 'add'
        assert await built.call_tool('add', {'a': 1, 'b': 2}, ctx, tool) == 3
    assert log == ['enter', 'exit']
    assert builds == [0]


async def test_a_tool_the_rebuilt_toolset_lacks_is_the_users_error_and_says_where() -> None:
    log: list[str] = []
    toolset = dynamic([], log, tools=[])
    with pytest.raises(UserError) as raised:
        async with built_dynamic_tool(toolset, context(), 'add', where='when built inside the call-tool activity'):
            pytest.fail('no tool to yield')  # pragma: no cover
    assert str(raised.value) == (
        "Tool 'add' is not in dynamic toolset 'dyn' when built inside the call-tool activity: the toolset function "
        'must return the same tools for the same run context.'
    )
    assert log == ['enter', 'exit']  # what was built is left again


class Instructing(Entered):
    """Returns its instructions as a tuple, as a toolset may."""

    async def get_instructions(self, ctx: RunContext[Any]) -> Any:
        return ('first', 'second')


async def test_a_listing_takes_tools_and_instructions_from_one_build() -> None:
    builds: list[int] = []
    log: list[str] = []

    def build(ctx: RunContext[None]) -> AbstractToolset[None]:
        builds.append(ctx.run_step)
        return Instructing(FunctionToolset([add]), log)

    tools, instructions = await list_dynamic_toolset(DynamicToolset(build, id='dyn'), context())
    assert list(tools) == ['add']
    assert builds == [0]
    assert log == ['enter', 'exit']
    assert instructions == ['first', 'second']  # the tuple the toolset returned, as a list


@pytest.mark.parametrize(
    ('value', 'recorded'),
    [
        (None, None),
        ('text', 'text'),
        (('a', 'b'), ['a', 'b']),
        (['a'], ['a']),
    ],
)
def test_instructions_are_recorded_as_a_list(value: Any, recorded: Any) -> None:
    assert recordable_instructions(value) == recorded


def test_an_instruction_part_is_recorded_as_itself() -> None:
    part = InstructionPart(content='x')
    assert recordable_instructions(part) is part


async def check(ctx: RunContext[None], a: int, b: int) -> None:
    if a < 0:
        raise ModelRetry('a must not be negative')


async def test_a_validator_runs_in_its_own_unit_only_where_pydantic_ai_validates_in_units() -> None:
    ctx = context()
    (plain_tool,) = (await FunctionToolset([add]).get_tools(ctx)).values()
    (validated_tool,) = (await FunctionToolset([Tool(add, args_validator=check)]).get_tools(ctx)).values()
    assert validates_args_in_unit(plain_tool) is False
    assert validates_args_in_unit(validated_tool) is ARGS_VALIDATOR_UNITS


async def test_arguments_are_validated_in_the_unit_with_or_without_the_tools_validator() -> None:
    ctx = context()
    (validated_tool,) = (await FunctionToolset([Tool(add, args_validator=check)]).get_tools(ctx)).values()
    with pytest.raises(ModelRetry, match="Invalid arguments for tool 'add'"):
        await validate_tool_arguments(validated_tool, {'a': 'x'}, ctx, run_validator=False)
    with pytest.raises(ModelRetry, match='must not be negative'):
        await validate_tool_arguments(validated_tool, {'a': -1, 'b': 2}, ctx)
    # Where a `validate_args` unit already ran the validator, the call unit checks the schema only.
    assert await validate_tool_arguments(validated_tool, {'a': -1, 'b': 2}, ctx, run_validator=False) == {
        'a': -1,
        'b': 2,
    }
