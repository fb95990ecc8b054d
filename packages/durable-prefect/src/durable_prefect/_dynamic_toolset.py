"""Dynamic toolsets (`@agent.toolset(id=...)`, `DynamicToolset`): built and listed in `Discover Tools: {id}` tasks.

A dynamic toolset's function is user code that may do I/O (open an MCP connection, read a database). In flow code it
would run unrecorded, again on every retry or resumption of the flow run, so inside a flow a dynamic toolset with an
id is never built there: a `Discover Tools: {id}` task builds it, lists its tools and instructions, and its result is
cached like every other task's (keyed by the toolset's id and the run context, deps and run step included, under the
agent run's scope). Each `Call Tool: {tool}` task (and `Validate Tool Args: {tool}`, where the installed pydantic-ai
validates in tasks) builds the toolset again inside itself and calls (or validates with) the real tool there, so a
flow run whose listing came from the cache calls its tools without running the function in flow code.

The call tasks are the same tasks, with the same keys, as before discovery moved into a task: the toolset counts by
its id, the tool by its definition, and the arguments as the tool's schema fills them (see `_DynamicToolCallInput`),
so the tool calls a flow run completed before the upgrade are found again.

A dynamic toolset without an id keeps the former layout (built in flow code, its calls in tasks): its listing would
have no name, and nothing could tell two such toolsets' listings apart in a key. pydantic-ai 2.x's `PrefectAgent`
leaves it inline too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from prefect.context import FlowRunContext
from pydantic_ai.messages import InstructionPart
from pydantic_ai.tools import AgentDepsT, RunContext, ToolDefinition
from pydantic_ai.toolsets import AbstractToolset, ToolsetTool
from typing_extensions import Self

from durable_kernel import (
    ListedInstructions,
    built_dynamic_tool,
    list_dynamic_toolset,
    listed_toolset_tools,
    prefect_task_name,
    unwrap_tool_outcome,
    validate_tool_arguments,
    validates_args_in_unit,
    with_args_validator_unit,
)

from ._cache_policy import KeyedTaskInput
from ._function_toolset import PrefectFunctionToolset
from ._result_first import agent_task
from ._task_config import TaskConfig
from ._toolset import ARGS_VALIDATION_TASK, TOOL_CALL_TASK, ToolCallInput

__all__ = ('ListedDynamicTool', 'ListedDynamicTools', 'PrefectDynamicToolset')


@dataclass
class ListedDynamicTool:
    """One tool as the `Discover Tools` task recorded it: what the flow needs to offer it to the model."""

    tool_def: ToolDefinition
    max_retries: int
    has_args_validator: bool = False
    """Whether the tool's `args_validator` runs in a `Validate Tool Args` task (only where the installed pydantic-ai
    validates in tasks, `ARGS_VALIDATOR_UNITS`); otherwise the call task runs it."""


@dataclass
class ListedDynamicTools:
    """The cached result of a `Discover Tools: {id}` task: the tools and the instructions, from one build."""

    tools: dict[str, ListedDynamicTool]
    instructions: ListedInstructions = None


class _DiscoverInput(KeyedTaskInput):
    """A listing: keyed by the toolset (its id) and the run context (deps, metadata, run step, messages)."""

    __slots__ = ('ctx', 'toolset')

    def __init__(self, toolset: AbstractToolset[Any], ctx: RunContext[Any]) -> None:
        self.toolset = toolset
        self.ctx = ctx

    def cache_material(self) -> Any:
        return {'toolset': self.toolset, 'ctx': self.ctx}


async def _discover_tools(listing: _DiscoverInput) -> ListedDynamicTools:
    tools, instructions = await list_dynamic_toolset(listing.toolset, listing.ctx)
    return ListedDynamicTools(
        tools={
            name: ListedDynamicTool(
                tool_def=tool.tool_def, max_retries=tool.max_retries, has_args_validator=validates_args_in_unit(tool)
            )
            for name, tool in tools.items()
        },
        instructions=instructions,
    )


DISCOVER_TOOLS_TASK = agent_task(_discover_tools, context='ctx')
"""The `Discover Tools: {id}` task (a task of its own: its source keys it apart from the MCP listing, whose input has
the same shape)."""


class _BuiltInTask(AbstractToolset[Any]):
    """The dynamic toolset as a call task's input holds it: keyed as the toolset (its id), built inside the task.

    The call task runs `call_tool` with the task's own run context (which refuses `enqueue()` and `cancel()`): the
    toolset function runs there, the arguments are validated against the real tool, and the tool is called.
    """

    def __init__(self, toolset: AbstractToolset[Any], *, run_args_validator: bool) -> None:
        self._toolset = toolset
        self._run_args_validator = run_args_validator

    @property
    def id(self) -> str | None:
        return self._toolset.id

    @property
    def label(self) -> str:
        return self._toolset.label

    async def get_tools(self, ctx: RunContext[Any]) -> dict[str, ToolsetTool[Any]]:  # pragma: no cover - never listed
        return {}

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        return await _call_built(
            self._toolset, name, tool_args, ctx, run_args_validator=self._run_args_validator, where='its call task'
        )


async def _call_built(
    toolset: AbstractToolset[Any],
    name: str,
    tool_args: dict[str, Any],
    ctx: RunContext[Any],
    *,
    run_args_validator: bool,
    where: str,
) -> Any:
    # The flow only parsed the arguments against the recorded schema: the real tool exists only where it is built.
    async with built_dynamic_tool(toolset, ctx, name, where=f'when built inside {where}') as (built, real_tool):
        args = await validate_tool_arguments(real_tool, tool_args, ctx, run_validator=run_args_validator)
        return await built.call_tool(name, args, ctx, real_tool)


class _DynamicToolCallInput(ToolCallInput):
    """A dynamic tool's call (or validation): keyed as a `ToolCallInput` whose arguments the tool's schema filled.

    Before discovery moved into a task, the flow validated the arguments against the real tool, which fills the
    parameters the model left out with their defaults, and those arguments entered the key. The flow now only parses
    them, so the key takes the defaults the recorded schema declares: the key of such a call stays what it was (the
    tool still gets the arguments as the model sent them, and validates them itself).
    """

    __slots__ = ('key_args',)

    def __init__(
        self,
        toolset: AbstractToolset[Any],
        name: str,
        tool_args: dict[str, Any],
        ctx: RunContext[Any],
        tool: ToolsetTool[Any],
    ) -> None:
        super().__init__(toolset, name, tool_args, ctx, tool)
        self.key_args = with_schema_defaults(tool_args, tool.tool_def)

    def cache_material(self) -> Any:
        return {**super().cache_material(), 'tool_args': self.key_args}


def with_schema_defaults(tool_args: dict[str, Any], tool_def: ToolDefinition) -> dict[str, Any]:
    """`tool_args` with each top-level parameter the schema gives a default and the arguments leave out, filled in.

    Args:
        tool_args: The parsed arguments.
        tool_def: The tool's definition (its `parameters_json_schema`).

    Returns:
        A new dict (or `tool_args` itself when nothing is missing).
    """
    properties: Any = tool_def.parameters_json_schema.get('properties')
    if not isinstance(properties, dict):
        return tool_args
    missing: dict[str, Any] = {}
    for name, spec in cast(dict[Any, Any], properties).items():
        if isinstance(name, str) and name not in tool_args and isinstance(spec, dict) and 'default' in spec:
            missing[name] = cast(dict[str, Any], spec)['default']
    return {**tool_args, **missing} if missing else tool_args


@dataclass
class PrefectDynamicToolset(PrefectFunctionToolset[AgentDepsT]):
    """A wrapper for a dynamic toolset (built per run or per step by a function): built, listed and called in tasks.

    Inside a flow, a toolset with an id is never built in flow code: a `Discover Tools: {id}` task builds it and lists
    its tools and instructions (at each run step, or once per run with `per_run_step=False`), and each tool call is a
    `Call Tool: {tool}` task that builds it again and calls the tool there, with the same per-tool configs as
    [`PrefectFunctionToolset`][durable_prefect.PrefectFunctionToolset]. A retried or resumed flow run gets the
    listing and the completed calls from the cache without running the function again. A tool configured to run
    without a task is called in flow code, where the toolset is then built. A toolset without an id is built in
    flow code, and its tool calls are tasks.
    """

    # Set on the per-run copy made in a flow (`for_run`): this copy lists in tasks and keeps the run's listing.
    _lists_in_tasks: bool = field(default=False, init=False, repr=False, compare=False)
    _listing: ListedDynamicTools | None = field(default=None, init=False, repr=False, compare=False)

    def _in_task_mode(self) -> bool:
        return self._lists_in_tasks and FlowRunContext.get() is not None

    async def for_run(self, ctx: RunContext[AgentDepsT]) -> AbstractToolset[AgentDepsT]:
        """In a flow (with an id): a fresh copy that builds nothing here; otherwise the wrapped toolset's run copy."""
        if FlowRunContext.get() is None or self.wrapped.id is None:
            return await super().for_run(ctx)
        # `replace` leaves out the fields that are not `__init__` arguments: the copy starts without a listing.
        run_copy = dataclasses.replace(self)
        run_copy._reads_tool_metadata = self._reads_tool_metadata
        run_copy._validates_in_tasks = self._validates_in_tasks
        run_copy._lists_in_tasks = True
        return run_copy

    async def for_run_step(self, ctx: RunContext[AgentDepsT]) -> AbstractToolset[AgentDepsT]:
        """In a flow the toolset is built in the tasks, not here (the wrapped toolset's own step would build it)."""
        if self._in_task_mode():
            return self
        return await super().for_run_step(ctx)

    async def __aenter__(self) -> Self:
        # Nothing is built in flow code, so there is nothing to enter: each task enters what it builds.
        if self._lists_in_tasks:
            return self
        return await super().__aenter__()

    async def __aexit__(self, *args: Any) -> bool | None:
        if self._lists_in_tasks:
            return None
        return await super().__aexit__(*args)

    async def get_tools(self, ctx: RunContext[AgentDepsT]) -> dict[str, ToolsetTool[AgentDepsT]]:
        """The tools as the `Discover Tools: {id}` task of this run step (or of the run) listed them."""
        if not self._in_task_mode():
            return await super().get_tools(ctx)
        listing = self._listing
        if listing is None or getattr(self.wrapped, 'per_run_step', True):
            toolset_id = self.wrapped.id or ''
            discover = self._task(
                DISCOVER_TOOLS_TASK, prefect_task_name('discover_tools', toolset_id), self.task_config
            )
            listing = self._listing = await discover(_DiscoverInput(self.wrapped, ctx))
        tools = listed_toolset_tools(self, listing.tools)
        for name, info in listing.tools.items():
            if not (info.has_args_validator and self._validates_in_tasks):
                continue
            config = self._tool_config(name, tools[name])
            # A tool run without a task (`None`) is validated where it is called, in flow code.
            if config is not None:
                tools[name] = with_args_validator_unit(tools[name], self._validation_unit(name, tools[name], config))
        return tools

    async def get_instructions(
        self, ctx: RunContext[AgentDepsT]
    ) -> str | InstructionPart | Sequence[str | InstructionPart] | None:
        """The instructions listed with the tools (the agent lists tools first in each step)."""
        if not self._in_task_mode():
            return await super().get_instructions(ctx)
        return self._listing.instructions if self._listing is not None else None

    def _validation_unit(
        self, name: str, tool: ToolsetTool[AgentDepsT], config: TaskConfig
    ) -> Callable[[RunContext[Any], dict[str, Any]], Awaitable[None]]:
        toolset = self.wrapped

        async def validate_built(ctx: RunContext[Any], **args: Any) -> None:
            # Inside the `Validate Tool Args` task, with its run context: the real tool's schema and validator.
            where = 'when built inside its Validate Tool Args task'
            async with built_dynamic_tool(toolset, ctx, name, where=where) as (_, real_tool):
                await validate_tool_arguments(real_tool, args, ctx)

        in_task = dataclasses.replace(tool, args_validator_func=validate_built)

        async def run_unit(ctx: RunContext[Any], args: dict[str, Any]) -> None:
            validate_task = self._task(ARGS_VALIDATION_TASK, prefect_task_name('validate_args', name), config)
            unwrap_tool_outcome(await validate_task(_DynamicToolCallInput(toolset, name, args, ctx, in_task)))

        return run_unit

    async def call_tool(
        self,
        name: str,
        tool_args: dict[str, Any],
        ctx: RunContext[AgentDepsT],
        tool: ToolsetTool[AgentDepsT],
    ) -> Any:
        """Call the tool in a `Call Tool: {tool}` task that builds the toolset (in flow code if it has no task)."""
        if not self._in_task_mode():
            return await super().call_tool(name, tool_args, ctx, tool)
        # A tool offered with a validator had it run in its `Validate Tool Args` task already.
        run_args_validator = tool.args_validator_func is None
        config = self._tool_config(name, tool)
        if config is None:
            return await _call_built(
                self.wrapped, name, tool_args, ctx, run_args_validator=run_args_validator, where='the flow'
            )
        call_task = self._task(TOOL_CALL_TASK, prefect_task_name('call_tool', name), config)
        in_task = _BuiltInTask(self.wrapped, run_args_validator=run_args_validator)
        outcome = await call_task(_DynamicToolCallInput(in_task, name, tool_args, ctx, tool))
        return unwrap_tool_outcome(outcome)
