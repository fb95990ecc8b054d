"""A dynamic toolset inside a durable unit: built there, listed there, and the called tool found there.

A dynamic toolset (`@agent.toolset`, `DynamicToolset`) is built by a function of the user's, which may do I/O (open
an MCP connection, read a database), so the engines never build it in workflow or flow code: a listing unit builds
it and records its tools and instructions, and each call (or `validate_args`) unit builds it again and looks the
called tool up in what it built. How a unit is made (activity, step) is the engine's; what is built, in which order,
and what is wrong when the tool is missing is written here once.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pydantic_ai.exceptions import UserError
from pydantic_ai.tools import RunContext, ToolDefinition
from pydantic_ai.toolsets import AbstractToolset, ToolsetTool

from ._compat import ARGS_VALIDATOR_UNITS
from ._toolsets import ListedInstructions, recordable_instructions

__all__ = (
    'ListedDynamicTool',
    'ListedDynamicTools',
    'built_dynamic_tool',
    'built_for_run_step',
    'list_dynamic_toolset',
    'listed_dynamic_toolset',
    'validates_args_in_unit',
)


@dataclass
class ListedDynamicTool:
    """One tool of a dynamic toolset as a listing unit recorded it: what workflow or flow code needs to offer it."""

    tool_def: ToolDefinition
    max_retries: int
    has_args_validator: bool = False
    """Whether the tool's `args_validator` runs in a `validate_args` unit (pydantic-ai 2.x's field of the same name).

    Set only where the installed pydantic-ai validates in units (`ARGS_VALIDATOR_UNITS`); a listing recorded before
    has no such attribute and reads the class default, so its run resumes with the validator in the call unit, as it
    ran."""


@dataclass
class ListedDynamicTools:
    """What a dynamic toolset's listing unit records: its tools and its instructions, from one build.

    The attribute names are those of pydantic-ai 2.x's own listing result, so a run it recorded is read the same way.
    """

    tools: dict[str, ListedDynamicTool]
    instructions: ListedInstructions = None


@asynccontextmanager
async def built_for_run_step(
    toolset: AbstractToolset[Any], ctx: RunContext[Any]
) -> AsyncGenerator[AbstractToolset[Any]]:
    """Inside a unit: the dynamic toolset built for this run and run step, entered until the block ends.

    The toolset built for the run is entered (an MCP toolset it returns connects there), then asked for the run
    step's toolset, as the agent loop would do it.

    Args:
        toolset: The dynamic toolset (the durable wrapper's wrapped one), unbuilt.
        ctx: The unit's run context.

    Yields:
        The toolset built for the run step.
    """
    built = await toolset.for_run(ctx)
    async with built:
        yield await built.for_run_step(ctx)


async def list_dynamic_toolset(
    toolset: AbstractToolset[Any], ctx: RunContext[Any]
) -> tuple[dict[str, ToolsetTool[Any]], ListedInstructions]:
    """Inside a listing unit: build the dynamic toolset, and list its tools and its instructions from that one build.

    Args:
        toolset: The dynamic toolset, unbuilt.
        ctx: The unit's run context.

    Returns:
        The tools by name, and the instructions as a listing records them (a sequence as a list).
    """
    async with built_for_run_step(toolset, ctx) as built:
        tools = await built.get_tools(ctx)
        instructions = recordable_instructions(await built.get_instructions(ctx))
    return tools, instructions


def validates_args_in_unit(tool: ToolsetTool[Any]) -> bool:
    """Whether a listing records that `tool`'s `args_validator` runs in a `validate_args` unit of its own.

    Only where the installed pydantic-ai validates tool arguments in units (`ARGS_VALIDATOR_UNITS`), and only for a
    tool that has a validator; otherwise the call unit runs the validator, as it did before.

    Args:
        tool: The tool as the listing unit built it.

    Returns:
        The `has_args_validator` field of the recorded listing.
    """
    return ARGS_VALIDATOR_UNITS and tool.args_validator_func is not None


@asynccontextmanager
async def built_dynamic_tool(
    toolset: AbstractToolset[Any], ctx: RunContext[Any], name: str, *, where: str
) -> AsyncGenerator[tuple[AbstractToolset[Any], ToolsetTool[Any]]]:
    """Inside a call or `validate_args` unit: the dynamic toolset built again, and the called tool in it.

    The workflow offered the tool from the listing unit's record; the unit builds the toolset again, which must
    return the same tools for the same run context. A tool that is not there is the user's error, said as such.

    Args:
        toolset: The dynamic toolset, unbuilt.
        ctx: The unit's run context.
        name: The called tool's name.
        where: Where it was built, for the message (`'when built inside the call-tool activity'`).

    Yields:
        The toolset built for the run step (entered until the block ends) and the tool.

    Raises:
        UserError: The built toolset has no tool `name`.
    """
    async with built_for_run_step(toolset, ctx) as built:
        tool = (await built.get_tools(ctx)).get(name)
        if tool is None:
            raise UserError(
                f'Tool {name!r} is not in dynamic toolset {toolset.id!r} {where}: the toolset function must return '
                'the same tools for the same run context.'
            )
        yield built, tool


async def listed_dynamic_toolset(
    toolset: AbstractToolset[Any],
    ctx: RunContext[Any],
    *,
    tool_class: type[ListedDynamicTool] = ListedDynamicTool,
    listing_class: type[ListedDynamicTools] = ListedDynamicTools,
) -> ListedDynamicTools:
    """Inside a listing unit: build the dynamic toolset and return what the unit records.

    Args:
        toolset: The dynamic toolset, unbuilt.
        ctx: The unit's run context.
        tool_class: The class of each listed tool (an engine whose recorded results name their class, such as DBOS's
            pickled step outputs, passes its own subclass).
        listing_class: The class of the listing, likewise.

    Returns:
        The listing: every tool's definition, retries and whether its validator has a unit of its own; the
        instructions.
    """
    tools, instructions = await list_dynamic_toolset(toolset, ctx)
    return listing_class(
        tools={
            name: tool_class(
                tool_def=tool.tool_def, max_retries=tool.max_retries, has_args_validator=validates_args_in_unit(tool)
            )
            for name, tool in tools.items()
        },
        instructions=instructions,
    )
