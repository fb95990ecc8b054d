"""MCP toolsets (and pydantic-ai 1.107's MCP servers): tool listing and tool calls in Prefect tasks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from prefect.context import FlowRunContext
from pydantic_ai.messages import InstructionPart
from pydantic_ai.tools import AgentDepsT, RunContext, ToolDefinition
from pydantic_ai.toolsets import AbstractToolset, ToolsetTool

from durable_kernel import PrefectTaskKind, mcp_tool_for_tool_def, prefect_task_name, unwrap_tool_outcome

from ._cache_policy import KeyedTaskInput
from ._result_first import agent_task
from ._task_config import TaskConfig, merge_task_config
from ._toolset import TOOL_CALL_TASK, PrefectWrapperToolset, ToolCallInput

__all__ = ('PrefectMCPServer', 'PrefectMCPToolset', 'with_capability_names')


class _ListToolsInput(KeyedTaskInput):
    __slots__ = ('ctx', 'toolset')

    def __init__(self, toolset: AbstractToolset[Any], ctx: RunContext[Any]) -> None:
        self.toolset = toolset
        self.ctx = ctx

    def cache_material(self) -> Any:
        return {'toolset': self.toolset, 'ctx': self.ctx}


async def _list_mcp_tools(listing: _ListToolsInput) -> list[ToolDefinition]:
    tools = await listing.toolset.get_tools(listing.ctx)
    return [tool.tool_def for tool in tools.values()]


_LIST_TOOLS_TASK = agent_task(_list_mcp_tools, context='ctx')


async def _get_mcp_instructions(listing: _ListToolsInput) -> Any:
    return await listing.toolset.get_instructions(listing.ctx)


# The capability form's `Get MCP Instructions: {id}` task (a task of its own: its source keys its cache apart from the
# listing's, which has the same input).
_INSTRUCTIONS_TASK = agent_task(_get_mcp_instructions, context='ctx')


@dataclass
class _PrefectMCPBase(PrefectWrapperToolset[AgentDepsT]):
    task_config: TaskConfig = field(default_factory=lambda: merge_task_config())
    # `with_capability_names` (the capability form) lists tools in `Get MCP Tools: {id}` tasks, as pydantic-ai 2.x.
    _list_tools_kind: PrefectTaskKind = field(default='list_mcp_tools', init=False, repr=False, compare=False)
    # ... and reads the server's instructions in a `Get MCP Instructions: {id}` task (the wrapper: in flow code).
    _instructions_in_task: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.task_config = merge_task_config(self.task_config)

    @property
    def _label(self) -> str:
        return self.wrapped.id or self.wrapped.label

    async def get_tools(self, ctx: RunContext[AgentDepsT]) -> dict[str, ToolsetTool[AgentDepsT]]:
        """List the server's tools, in a Prefect task named `List MCP Tools: {id}` when in a flow.

        Args:
            ctx: The run context.

        Returns:
            The tools by name.
        """
        if FlowRunContext.get() is None:
            return await super().get_tools(ctx)
        list_task = self._task(
            _LIST_TOOLS_TASK, prefect_task_name(self._list_tools_kind, self._label), self.task_config
        )
        tool_defs: list[ToolDefinition] = await list_task(_ListToolsInput(self.wrapped, ctx))
        # The task recorded definitions only (tools hold live objects): the toolset rebuilds each tool without I/O.
        return {tool_def.name: await mcp_tool_for_tool_def(self.wrapped, tool_def, ctx) for tool_def in tool_defs}

    async def get_instructions(
        self, ctx: RunContext[AgentDepsT]
    ) -> str | InstructionPart | Sequence[str | InstructionPart] | None:
        """The server's instructions: in the capability form inside a flow, read in a `Get MCP Instructions: {id}` task.

        Only when the toolset includes them (`include_instructions=True`), as pydantic-ai 2.68 does; otherwise, and in
        the wrapper form, as the wrapped toolset reads them.
        """
        if not self._instructions_in_task or FlowRunContext.get() is None or not _includes_instructions(self.wrapped):
            return await super().get_instructions(ctx)
        instructions_task = self._task(
            _INSTRUCTIONS_TASK, prefect_task_name('get_mcp_instructions', self._label), self.task_config
        )
        return await instructions_task(_ListToolsInput(self.wrapped, ctx))

    async def call_tool(
        self,
        name: str,
        tool_args: dict[str, Any],
        ctx: RunContext[AgentDepsT],
        tool: ToolsetTool[AgentDepsT],
    ) -> Any:
        """Run the MCP tool: in a `Call MCP Tool: {tool}` task inside a flow, directly otherwise.

        Args:
            name: The tool's name.
            tool_args: The validated arguments.
            ctx: The run context.
            tool: The tool.

        Returns:
            The tool's result (control-flow exceptions raised by the tool are raised again here).
        """
        if FlowRunContext.get() is None:
            return await super().call_tool(name, tool_args, ctx, tool)
        call_task = self._task(TOOL_CALL_TASK, prefect_task_name('call_mcp_tool', name), self.task_config)
        outcome = await call_task(ToolCallInput(self.wrapped, name, tool_args, ctx, tool))
        return unwrap_tool_outcome(outcome)


def with_capability_names(toolset: _PrefectMCPBase[AgentDepsT]) -> _PrefectMCPBase[AgentDepsT]:
    """`toolset` with the capability form's MCP tasks: `Get MCP Tools: {id}` and `Get MCP Instructions: {id}`."""
    toolset._list_tools_kind = 'get_mcp_tools'  # pyright: ignore[reportPrivateUsage]
    toolset._instructions_in_task = True  # pyright: ignore[reportPrivateUsage]
    return toolset


def _includes_instructions(toolset: AbstractToolset[Any]) -> bool:
    # `MCPToolset`, 1.107's `MCPServer` classes and `FastMCPToolset` all have the flag (default: off).
    return bool(getattr(toolset, 'include_instructions', False))


@dataclass
class PrefectMCPServer(_PrefectMCPBase[AgentDepsT]):
    """An MCP server whose tool listing and tool calls run as Prefect tasks.

    It wraps pydantic-ai 1.107's `MCPServer` classes (`MCPServerStdio`, ...) or, on either line, an `MCPToolset`
    (pydantic-ai 2.x has only `MCPToolset`, which [`prefectify_toolset`][durable_prefect.prefectify_toolset] wraps
    in a [`PrefectMCPToolset`][durable_prefect.PrefectMCPToolset], the same thing under another name).

    Inside a flow, tool calls are tasks named `Call MCP Tool: {tool}` and tool listing is a task named
    `List MCP Tools: {id}`, so a retried or resumed flow run sees the same tools and reuses completed calls.
    """


@dataclass
class PrefectMCPToolset(_PrefectMCPBase[AgentDepsT]):
    """A wrapper for `MCPToolset` (and pydantic-ai 1.107's `FastMCPToolset`) that runs its I/O in Prefect tasks.

    Task names are the same as for [`PrefectMCPServer`][durable_prefect.PrefectMCPServer].
    """
