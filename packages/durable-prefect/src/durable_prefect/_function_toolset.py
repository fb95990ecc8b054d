"""Function tools called in Prefect tasks named `Call Tool: {tool}` (dynamic toolsets build on it: `_dynamic_toolset`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from prefect.context import FlowRunContext
from pydantic_ai.tools import AgentDepsT, RunContext
from pydantic_ai.toolsets import AbstractToolset, ToolsetTool

from durable_kernel import (
    ARGS_VALIDATOR_UNITS,
    prefect_task_name,
    tool_unit_setting,
    unwrap_tool_outcome,
    with_args_validator_unit,
)

from ._task_config import TaskConfig, merge_task_config
from ._toolset import ARGS_VALIDATION_TASK, TOOL_CALL_TASK, PrefectWrapperToolset, ToolCallInput, tool_task_config

__all__ = ('PrefectFunctionToolset', 'reading_tool_metadata', 'validating_in_tasks')

TOOL_METADATA_KEY = 'prefect'
"""The tool metadata key of a per-tool task config in the capability form (`metadata={'prefect': TaskConfig | False}`)."""


@dataclass
class PrefectFunctionToolset(PrefectWrapperToolset[AgentDepsT]):
    """A function toolset whose tool calls run as Prefect tasks, so a retried flow run reuses completed calls.

    Inside a flow each call is a task named `Call Tool: {tool}`. `task_config` applies to every tool;
    `tool_task_config` entries override it per tool, and an entry of `None` runs that tool without a task.
    """

    task_config: TaskConfig = field(default_factory=lambda: merge_task_config())
    """The config of every tool's task (merged over the defaults)."""

    tool_task_config: dict[str, TaskConfig | None] = field(default_factory=dict[str, 'TaskConfig | None'])
    """Per-tool configs; `None` runs that tool without a task."""

    # Set by `reading_tool_metadata` (the capability form): a tool's `metadata['prefect']` configures its task too.
    _reads_tool_metadata: bool = field(default=False, init=False, repr=False, compare=False)

    # Set by `validating_in_tasks` (the capability form; a dynamic toolset in both forms), where the installed
    # pydantic-ai does the same (`ARGS_VALIDATOR_UNITS`): a tool's `args_validator` runs in a `Validate Tool Args`
    # task, so its I/O is checkpointed like the call's.
    _validates_in_tasks: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.task_config = merge_task_config(self.task_config)

    async def for_run(self, ctx: RunContext[AgentDepsT]) -> AbstractToolset[AgentDepsT]:
        """The per-run copy (a dynamic toolset's is new), still reading tool metadata if this one does."""
        return self._same_rules(await super().for_run(ctx))

    async def for_run_step(self, ctx: RunContext[AgentDepsT]) -> AbstractToolset[AgentDepsT]:
        """The per-step copy, still reading tool metadata if this one does."""
        return self._same_rules(await super().for_run_step(ctx))

    def _same_rules(self, toolset: AbstractToolset[AgentDepsT]) -> AbstractToolset[AgentDepsT]:
        # `dataclasses.replace` (how a wrapper makes its per-run copy) leaves out fields that are not `__init__`
        # arguments: without this a dynamic toolset's tools (a new wrapped toolset per run) would lose their
        # `metadata['prefect']` rules, and a tool opted out with `False` would run in a task all the same.
        if isinstance(toolset, PrefectFunctionToolset) and toolset is not self:
            toolset._reads_tool_metadata = self._reads_tool_metadata
            toolset._validates_in_tasks = self._validates_in_tasks
        return toolset

    async def get_tools(self, ctx: RunContext[AgentDepsT]) -> dict[str, ToolsetTool[AgentDepsT]]:
        """The tools; inside a flow, validating in tasks, a tool's `args_validator` is its `Validate Tool Args` task."""
        tools = await super().get_tools(ctx)
        if not self._validates_in_tasks or FlowRunContext.get() is None:
            return tools
        validated: dict[str, ToolsetTool[AgentDepsT]] = {}
        for name, tool in tools.items():
            config = self._tool_config(name, tool)
            # A tool run without a task (`None`) is validated where it runs, in flow code, as pydantic-ai 2.x does.
            if tool.args_validator_func is not None and config is not None:
                tool = with_args_validator_unit(tool, self._validation_task(name, tool, config))
            validated[name] = tool
        return validated

    def _validation_task(
        self, name: str, tool: ToolsetTool[AgentDepsT], config: TaskConfig
    ) -> Callable[[RunContext[Any], dict[str, Any]], Awaitable[None]]:
        async def run_unit(ctx: RunContext[Any], args: dict[str, Any]) -> None:
            validate_task = self._task(ARGS_VALIDATION_TASK, prefect_task_name('validate_args', name), config)
            unwrap_tool_outcome(await validate_task(ToolCallInput(self.wrapped, name, args, ctx, tool)))

        return run_unit

    def _tool_config(self, name: str, tool: ToolsetTool[AgentDepsT]) -> TaskConfig | None:
        """The tool's task config: `tool_task_config[name]`, else what the tool says of itself, else `task_config`.

        A tool says it with `metadata={'prefect': TaskConfig | False}` (read in the capability form) or, on pydantic-ai
        2.78, `durable=False` (no task, in both forms).
        """
        if name not in self.tool_task_config:
            engine_key = TOOL_METADATA_KEY if self._reads_tool_metadata else None
            own = tool_unit_setting(tool.tool_def, engine_key, config_label='TaskConfig')
            if own is False:
                return None
            if own is not None:
                return merge_task_config(self.task_config, dict(own))
        return tool_task_config(name, self.task_config, self.tool_task_config)

    async def call_tool(
        self,
        name: str,
        tool_args: dict[str, Any],
        ctx: RunContext[AgentDepsT],
        tool: ToolsetTool[AgentDepsT],
    ) -> Any:
        """Run the tool: in a `Call Tool: {tool}` task inside a flow (unless its config is `None`), directly otherwise.

        Args:
            name: The tool's name.
            tool_args: The validated arguments.
            ctx: The run context.
            tool: The tool.

        Returns:
            The tool's result (control-flow exceptions raised by the tool are raised again here).
        """
        config = self._tool_config(name, tool)
        if config is None or FlowRunContext.get() is None:
            return await super().call_tool(name, tool_args, ctx, tool)
        call_task = self._task(TOOL_CALL_TASK, prefect_task_name('call_tool', name), config)
        outcome = await call_task(ToolCallInput(self.wrapped, name, tool_args, ctx, tool))
        return unwrap_tool_outcome(outcome)


def validating_in_tasks(toolset: PrefectFunctionToolset[AgentDepsT]) -> PrefectFunctionToolset[AgentDepsT]:
    """`toolset`, whose tools' `args_validator`s run in `Validate Tool Args: {tool}` tasks inside a flow.

    Only where the installed pydantic-ai's `PrefectDurability` does the same (`ARGS_VALIDATOR_UNITS`); elsewhere
    `toolset` validates as before, in flow code.
    """
    toolset._validates_in_tasks = ARGS_VALIDATOR_UNITS  # pyright: ignore[reportPrivateUsage]
    return toolset


def reading_tool_metadata(toolset: PrefectFunctionToolset[AgentDepsT]) -> PrefectFunctionToolset[AgentDepsT]:
    """`toolset`, now also taking each tool's task config from its `metadata['prefect']` (`TaskConfig` or `False`).

    This is how pydantic-ai 2.x's capability form configures one tool; `tool_task_config` entries still win.
    """
    toolset._reads_tool_metadata = True  # pyright: ignore[reportPrivateUsage]
    return toolset
