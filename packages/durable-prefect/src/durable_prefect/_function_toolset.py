"""Function tools (and tools of dynamic toolsets) called in Prefect tasks named `Call Tool: {tool}`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prefect.context import FlowRunContext
from pydantic_ai.tools import AgentDepsT, RunContext
from pydantic_ai.toolsets import ToolsetTool

from durable_kernel import prefect_task_name, unwrap_tool_outcome

from ._task_config import TaskConfig, merge_task_config
from ._toolset import TOOL_CALL_TASK, PrefectWrapperToolset, ToolCallInput, tool_task_config

__all__ = ('PrefectDynamicToolset', 'PrefectFunctionToolset')


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

    def __post_init__(self) -> None:
        self.task_config = merge_task_config(self.task_config)

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
        config = tool_task_config(name, self.task_config, self.tool_task_config)
        if config is None or FlowRunContext.get() is None:
            return await super().call_tool(name, tool_args, ctx, tool)
        call_task = self._task(TOOL_CALL_TASK, prefect_task_name('call_tool', name), config)
        outcome = await call_task(ToolCallInput(self.wrapped, name, tool_args, ctx, tool))
        return unwrap_tool_outcome(outcome)


@dataclass
class PrefectDynamicToolset(PrefectFunctionToolset[AgentDepsT]):
    """A wrapper for a dynamic toolset (built per run or per step by a function): its tool calls are Prefect tasks.

    The toolset function itself runs in the flow (it builds live objects, which are not task results); the tools
    it provides are called in tasks named `Call Tool: {tool}`, with the same per-tool configs as
    [`PrefectFunctionToolset`][durable_prefect.PrefectFunctionToolset].
    """
