"""Finding the leaf toolsets of an agent (the ones that list and call tools themselves) and checking their ids."""

from __future__ import annotations

import copy
import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol, cast

from pydantic import ValidationError
from pydantic_ai.exceptions import ModelRetry, UserError
from pydantic_ai.messages import InstructionPart
from pydantic_ai.tools import RunContext, ToolDefinition
from pydantic_ai.toolsets import AbstractToolset, FunctionToolset, ToolsetTool
from pydantic_ai.toolsets.external import TOOL_SCHEMA_VALIDATOR

__all__ = (
    'ArgsValidatorUnit',
    'called_function_tool',
    'ListedInstructions',
    'ListedTool',
    'recordable_instructions',
    'validate_tool_arguments',
    'with_args_validator_unit',
    'leaf_toolsets',
    'listed_toolset_tools',
    'replace_leaf_toolsets',
    'require_toolset_id',
    'require_unique_toolset_ids',
    'tool_unit_setting',
)


class ListedTool(Protocol):
    """What a durable listing unit records of one tool: its definition and its retry budget."""

    @property
    def tool_def(self) -> ToolDefinition: ...

    @property
    def max_retries(self) -> int: ...


def listed_toolset_tools(
    toolset: AbstractToolset[Any], listed: Mapping[str, ListedTool]
) -> dict[str, ToolsetTool[Any]]:
    """The tools of `toolset` as a durable listing unit recorded them, for the run in workflow or flow code.

    The arguments are only parsed against the JSON schema here: the call unit validates them against the real tool,
    where it exists (the engine rebuilt it there).

    Args:
        toolset: The durable toolset the tools belong to (its `call_tool` runs the call unit).
        listed: The recorded tools, by name.

    Returns:
        The tools, by name.
    """
    return {
        name: ToolsetTool(
            toolset=toolset, tool_def=info.tool_def, max_retries=info.max_retries, args_validator=TOOL_SCHEMA_VALIDATOR
        )
        for name, info in listed.items()
    }


ListedInstructions = str | InstructionPart | list[str | InstructionPart] | None
"""A toolset's instructions as a durable listing unit records them: a sequence of them is a list."""


def recordable_instructions(
    value: str | InstructionPart | Sequence[str | InstructionPart] | None,
) -> ListedInstructions:
    """A toolset's instructions (`get_instructions`) as a listing unit records them: a sequence becomes a list.

    A toolset may return any sequence (a tuple, a generator's list); the engines' serializers and the recorded
    listings know only lists, so a listing records one whatever the toolset returned.

    Args:
        value: What the toolset's `get_instructions` returned.

    Returns:
        The same instructions, a sequence of them as a list.
    """
    if value is None or isinstance(value, (str, InstructionPart)):
        return value
    return list(value)


ArgsValidatorUnit = Callable[[RunContext[Any], dict[str, Any]], Awaitable[None]]
"""Runs a tool's argument validation in the engine's durable unit: `(run context, arguments)`, raising what the
validator raised (`ModelRetry`, ...)."""


def with_args_validator_unit(tool: ToolsetTool[Any], run_unit: ArgsValidatorUnit) -> ToolsetTool[Any]:
    """`tool`, whose `args_validator` runs in a durable unit instead of in workflow or flow code.

    The agent calls a tool's `args_validator_func` before the approval and deferral gate, with the arguments the schema
    validated: this one hands them to `run_unit`, which schedules the engine's `validate_args` unit (a validator may
    do I/O, and a dynamic toolset's validator exists only inside its units).

    Args:
        tool: The tool as offered in workflow or flow code.
        run_unit: Runs the validation unit and raises what the validator raised.

    Returns:
        The tool with its validator replaced by the unit.
    """

    async def args_validator_func(ctx: RunContext[Any], **args: Any) -> None:
        await run_unit(ctx, args)

    return dataclasses.replace(tool, args_validator_func=args_validator_func)


async def validate_tool_arguments(
    tool: ToolsetTool[Any],
    tool_args: dict[str, Any],
    ctx: RunContext[Any],
    *,
    validation_context: Any = None,
    run_validator: bool = True,
) -> dict[str, Any]:
    """Inside a unit: validate `tool_args` against the real tool's schema, then run its validator.

    Invalid arguments ask the model to retry (`ModelRetry`), as in a plain run; the validator's own `ModelRetry`,
    `ApprovalRequired` or `CallDeferred` propagate for the engine to record as the unit's outcome. A `validate_args`
    unit calls this; so does a call unit of a tool whose arguments only a unit can validate (a dynamic toolset's
    tool exists only where the toolset is built).

    Args:
        tool: The tool, rebuilt inside the unit.
        tool_args: The arguments as they crossed into the unit (JSON data).
        ctx: The unit's run context.
        validation_context: The Pydantic validation context to validate with.
        run_validator: Whether to run the tool's own `args_validator` too; `False` where a `validate_args` unit
            already ran it.

    Returns:
        The validated arguments.
    """
    try:
        args = tool.args_validator.validate_python(tool_args, context=validation_context)
    except ValidationError as error:
        raise ModelRetry(f'Invalid arguments for tool {tool.tool_def.name!r}: {error}') from error
    validator = tool.args_validator_func
    if run_validator and validator is not None:
        result = validator(ctx, **args)
        if inspect.isawaitable(result):
            await result
    return args


def leaf_toolsets(toolset: AbstractToolset[Any]) -> list[AbstractToolset[Any]]:
    """List the leaf toolsets under a toolset, in the order the agent uses them.

    Wrappers (prefixed, filtered, combined, ...) are walked through; their leaves are what does I/O and so what a
    durable engine must wrap.

    Args:
        toolset: A toolset, for example the agent's combined toolset.

    Returns:
        The leaves, depth first.
    """
    found: list[AbstractToolset[Any]] = []
    toolset.apply(found.append)
    return found


def replace_leaf_toolsets(
    toolset: AbstractToolset[Any], replace: Callable[[AbstractToolset[Any]], AbstractToolset[Any]]
) -> AbstractToolset[Any]:
    """Return a copy of the toolset tree with every leaf replaced by `replace(leaf)` (wrappers are kept).

    Args:
        toolset: The toolset tree.
        replace: Called once per leaf; return the leaf itself to keep it.

    Returns:
        The new tree (the input is not modified).
    """
    return toolset.visit_and_replace(replace)


def require_toolset_id(toolset: AbstractToolset[Any], *, engine: str) -> str:
    """Return the toolset's id, or raise a `UserError` that says how to give it one.

    Durable units are named after toolset ids, so a leaf toolset that does I/O needs a stable, unique id.

    Args:
        toolset: A leaf toolset.
        engine: The engine's name, for the message (`'Temporal'`, `'DBOS'`, `'Prefect'`).

    Returns:
        The id.

    Raises:
        UserError: The toolset has no id.
    """
    toolset_id = toolset.id
    if not toolset_id:
        raise UserError(
            f'{toolset.label} has no `id`, which {engine} needs to name its durable units stably. '
            f'Pass a unique `id=...` when constructing the toolset (for example `FunctionToolset(tools, id="my_tools")` '
            'or `MCPServerStdio(..., id="my_server")`).'
        )
    return toolset_id


def require_unique_toolset_ids(toolsets: Iterable[AbstractToolset[Any]], *, engine: str) -> None:
    """Refuse two different leaf toolsets with the same id (the same instance twice is one toolset).

    An engine names a toolset's durable units (Temporal activities, Prefect MCP listing keys, DBOS MCP steps) after its
    id: two toolsets under one id would share them, so one toolset's calls or listing would reach the other.

    Args:
        toolsets: The agent's toolsets (wrappers are walked through to their leaves).
        engine: The engine's name, for the message.

    Raises:
        UserError: Two different leaves have the same id.
    """
    seen: dict[str, AbstractToolset[Any]] = {}
    for toolset in toolsets:
        for leaf in leaf_toolsets(toolset):
            toolset_id = leaf.id
            if not toolset_id:
                continue
            known = seen.setdefault(toolset_id, leaf)
            if known is not leaf:
                raise UserError(
                    f'Two toolsets have the same `id` {toolset_id!r} ({known.label} and {leaf.label}): {engine} names '
                    "a toolset's durable units after its id, so one toolset's calls would reach the other's. Pass a "
                    'unique `id=` to each toolset.'
                )


def tool_unit_setting(
    tool_def: ToolDefinition, engine_key: str | None, *, config_label: str = 'config'
) -> Mapping[str, Any] | Literal[False] | None:
    """What a tool's own definition says about the durable unit its calls run in.

    pydantic-ai 2.78 lets a tool say it itself: `metadata={engine_key: config}` configures its unit (`False` runs it
    without one), and `Tool(..., durable=False)` runs it outside its unit, unless the engine's metadata key says
    otherwise. Engines apply this below the per-tool configs given to the durable agent, which win.

    Args:
        tool_def: The tool's definition (as listed for this run step).
        engine_key: The engine's metadata key (`'temporal'`, `'prefect'`), or `None` for an engine without one.
        config_label: The engine's name for a unit config (`ActivityConfig`, `TaskConfig`), for the error message.

    Returns:
        The tool's own unit config, `False` to run it without a unit, or `None` when the tool says nothing.

    Raises:
        UserError: The metadata under `engine_key` is neither a mapping nor `False`.
    """
    configured = (tool_def.metadata or {}).get(engine_key) if engine_key is not None else None
    if configured is False:
        return False
    if configured is not None:
        if not isinstance(configured, Mapping):
            raise UserError(
                f'The tool {tool_def.name!r} has `metadata={{{engine_key!r}: {configured!r}}}`: the value must be a '
                f'mapping of `{config_label}` options, or `False` to run the tool without a durable unit.'
            )
        return cast(Mapping[str, Any], configured)
    # `ToolDefinition.durable` is pydantic-ai 2.78's; earlier releases have no such field.
    return False if getattr(tool_def, 'durable', None) is False else None


async def called_function_tool(
    toolset: FunctionToolset[Any],
    ctx: RunContext[Any],
    name: str,
    *,
    tool_def: ToolDefinition | None,
    original_name: str | None = None,
    where: str,
) -> ToolsetTool[Any]:
    """Inside a call unit (activity, step, child workflow): the function tool the workflow called, or a refusal.

    A tool's `prepare` runs where the tools are listed, in workflow code, once per step. Listing the tools again in
    the unit would run it a second time against the unit's run context, and the definition it returns there (a
    timeout, a description) could differ from the one the model saw; so the tool is built from the definition the
    workflow sent (`tool_def`), held under `original_name` (a 2.x `prepare` may rename it; default its name). Only
    without a definition (a call scheduled by an earlier release or the reference) is the toolset listed again.

    Args:
        toolset: The function toolset that holds the tool.
        ctx: The unit's run context.
        name: The called tool's name.
        tool_def: The definition the workflow prepared, if the call carries one.
        original_name: The name the toolset holds the tool under, if a `prepare` renamed it.
        where: Where the unit runs, for the message (`'on this worker'`, `'in this process'`).

    Raises:
        UserError: The toolset has no such tool here: it was removed or renamed while a workflow used it.
    """
    tool = None
    if tool_def is not None:
        tool = await _tool_as_prepared(toolset, tool_def, ctx, original_name or tool_def.name)
    if tool is None:  # no definition, or one the toolset no longer holds under that name: list
        tool = (await toolset.get_tools(ctx)).get(name)
    if tool is None:
        raise UserError(
            f'Tool {name!r} is not in toolset {toolset.id!r} {where}. Tools cannot be removed or renamed while '
            'workflows that use them are running: keep the old tool until they finish.'
        )
    return tool


async def _tool_as_prepared(
    toolset: FunctionToolset[Any], tool_def: ToolDefinition, ctx: RunContext[Any], held_as: str
) -> ToolsetTool[Any] | None:
    """The tool built from the workflow's definition; `None` when the toolset holds no tool under `held_as`."""
    source = toolset.tools.get(held_as)
    if source is None:
        return None
    build = getattr(toolset, 'tool_for_tool_def', None)  # pydantic-ai 2.x releases that build it themselves
    if build is not None:
        return cast('ToolsetTool[Any]', build(tool_def, ctx=ctx, original_name=held_as))

    async def as_prepared(ctx: RunContext[Any], _: ToolDefinition) -> ToolDefinition:
        return tool_def

    # pydantic-ai 1.107: listed by the toolset itself (retries, timeout, validators as it builds them), with this one
    # tool, whose `prepare` returns the workflow's definition instead of running the user's function again.
    fixed = copy.copy(source)
    fixed.prepare = as_prepared
    one_tool = copy.copy(toolset)
    one_tool.tools = {held_as: fixed}
    return (await one_tool.get_tools(ctx)).get(tool_def.name)
