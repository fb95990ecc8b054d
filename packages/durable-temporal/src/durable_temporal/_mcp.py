"""MCP toolsets over activities: `MCPToolset` (both lines), and on 1.107 also `MCPServer*` and `FastMCPToolset`.

Which classes exist depends on the installed pydantic-ai line (2.x removed `MCPServer*` and `FastMCPToolset`), so they
come from `durable_kernel`'s compat module. An MCP toolset of a class we do not know is refused when the agent is
wrapped: left alone, its calls would reach the server from workflow code, outside any activity.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import InstructionPart
from pydantic_ai.tools import AgentDepsT, RunContext, ToolDefinition
from pydantic_ai.toolsets import AbstractToolset, ToolsetTool
from temporalio import activity, workflow
from temporalio.workflow import ActivityConfig

from durable_kernel import (
    ListedInstructions,
    ToolOutcome,
    is_mcp_toolset,
    mcp_tool_for_tool_def,
    mcp_toolset_class_names,
    recordable_instructions,
    unknown_mcp_toolset_class,
)

from ._config import ToolActivityConfig
from ._heartbeat import heartbeating_activity
from ._run_context import TemporalRunContext
from ._toolset import ActivityToolset, CallToolParams, GetToolsParams

if TYPE_CHECKING:
    from pydantic_ai.agent import AbstractAgent

__all__ = ('TemporalMCPToolset', 'is_mcp_toolset', 'refuse_unknown_mcp_toolset')


def refuse_unknown_mcp_toolset(toolset: AbstractToolset[Any]) -> None:
    """Raise a `UserError` for an MCP toolset that is not of a class we make durable on the installed line.

    Such a toolset (a class from another pydantic-ai line, a future one, or a third-party MCP client) would otherwise be
    left alone and reach its server from workflow code: not recorded, repeated on replay, and blocked by the sandbox.

    Raises:
        UserError: The toolset's class comes from an MCP module but is not one of `mcp_server_classes()`.
    """
    mcp_class = unknown_mcp_toolset_class(toolset)
    if mcp_class is None:
        return
    supported = mcp_toolset_class_names()
    raise UserError(
        f'Toolset {toolset.id!r} is a `{type(toolset).__name__}` (an MCP client, `{mcp_class.__module__}.'
        f'{mcp_class.__qualname__}`), which TemporalAgent cannot make durable: its calls would reach the server from '
        f'workflow code. MCP toolsets it makes durable on this pydantic-ai line: {supported}. Use '
        '`pydantic_ai.mcp.MCPToolset` for the server, or pass `TemporalAgent(temporalize_toolset_func=...)` a function '
        'that wraps this toolset in a `TemporalWrapperToolset` subclass whose activities talk to the server.'
    )


class TemporalMCPToolset(ActivityToolset[AgentDepsT]):
    """Lists an MCP server's tools and instructions and calls its tools in activities.

    With the server's `cache_tools` on, the tool list is fetched once per agent run and kept with the run (the
    activity result is in the workflow history), so a worker restart replays the same activity schedule.
    """

    def __init__(
        self,
        toolset: AbstractToolset[AgentDepsT],
        *,
        activity_name_prefix: str,
        activity_config: ActivityConfig,
        tool_activity_config: Mapping[str, ToolActivityConfig],
        deps_type: type[AgentDepsT],
        run_context_type: type[TemporalRunContext[AgentDepsT]],
        agent: AbstractAgent[AgentDepsT, Any] | None,
    ) -> None:
        super().__init__(
            toolset,
            activity_name_prefix=activity_name_prefix,
            activity_config=activity_config,
            tool_activity_config=tool_activity_config,
            deps_type=deps_type,
            run_context_type=run_context_type,
            agent=agent,
        )
        self.refuse_disabled_tool_activities(
            'MCP toolset', 'MCP tools talk to a server (I/O), which workflow code cannot do'
        )
        self._run_tool_defs: dict[str, ToolDefinition] | None = None

        async def get_instructions(params: GetToolsParams, deps: Any) -> ListedInstructions:
            ctx = await self.context_in_activity(params.serialized_run_context, deps)
            async with toolset:
                return recordable_instructions(await toolset.get_instructions(ctx))

        async def get_tools(params: GetToolsParams, deps: Any) -> dict[str, ToolDefinition]:
            ctx = await self.context_in_activity(params.serialized_run_context, deps)
            async with toolset:
                tools = await toolset.get_tools(ctx)
            # Only the definitions cross the boundary: the validator is rebuilt from them in the workflow.
            return {name: tool.tool_def for name, tool in tools.items()}

        async def call_tool(params: CallToolParams, deps: Any) -> ToolOutcome:
            ctx = await self.context_in_activity(params.serialized_run_context, deps)
            if params.tool_def is None:
                raise UserError(f'The call of MCP tool {params.name!r} carries no tool definition.')
            tool = await mcp_tool_for_tool_def(toolset, params.tool_def, ctx)
            async with toolset:
                return await self.call_tool_outcome(toolset, params.name, params.tool_args, ctx, tool)

        for fn in (get_instructions, get_tools, call_tool):
            fn.__annotations__['deps'] = deps_type
        self.get_instructions_activity = activity.defn(name=self.activity_name('mcp_server_get_instructions'))(
            heartbeating_activity(get_instructions)
        )
        self.get_tools_activity = activity.defn(name=self.activity_name('mcp_server_get_tools'))(
            heartbeating_activity(get_tools)
        )
        self.call_tool_activity = activity.defn(name=self.activity_name('mcp_server_call_tool'))(
            heartbeating_activity(call_tool)
        )

    @property
    def _cache_tools(self) -> bool:
        return bool(getattr(self.wrapped, 'cache_tools', False))

    @property
    def temporal_activities(self) -> list[Callable[..., Any]]:
        """The get-instructions, get-tools and call-tool activities."""
        return [self.get_instructions_activity, self.get_tools_activity, self.call_tool_activity]

    async def for_run(self, ctx: RunContext[AgentDepsT]) -> AbstractToolset[AgentDepsT]:
        """A per-run copy: the tool-definition cache belongs to one run, never to the worker."""
        if not workflow.in_workflow():
            return await super().for_run(ctx)
        run_copy = copy.copy(self)
        run_copy._run_tool_defs = None
        return run_copy

    async def get_instructions(
        self, ctx: RunContext[AgentDepsT]
    ) -> str | InstructionPart | Sequence[str | InstructionPart] | None:
        """Fetch the server's instructions in an activity, when the toolset includes them."""
        if not workflow.in_workflow():
            return await super().get_instructions(ctx)
        if not getattr(self.wrapped, 'include_instructions', False):
            return None
        return await self.execute(self.get_instructions_activity, ctx, f'get instructions: {self.id}')

    async def get_tools(self, ctx: RunContext[AgentDepsT]) -> dict[str, ToolsetTool[AgentDepsT]]:
        """List the server's tools in an activity (once per run when the server caches tools)."""
        if not workflow.in_workflow():
            return await super().get_tools(ctx)
        tool_defs = self._run_tool_defs
        if tool_defs is None or not self._cache_tools:
            tool_defs = await self.execute(self.get_tools_activity, ctx, f'get tools: {self.id}')
            self._run_tool_defs = tool_defs
        # Built from the recorded definitions without I/O (the server was asked in the activity).
        return {
            name: cast(ToolsetTool[AgentDepsT], await mcp_tool_for_tool_def(self.wrapped, tool_def, ctx))
            for name, tool_def in tool_defs.items()
        }

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[AgentDepsT], tool: ToolsetTool[AgentDepsT]
    ) -> Any:
        """Call the tool in the call-tool activity."""
        if not workflow.in_workflow():
            return await super().call_tool(name, tool_args, ctx, tool)
        return await self.call_tool_activity_from_workflow(self.call_tool_activity, name, tool_args, ctx, tool.tool_def)
