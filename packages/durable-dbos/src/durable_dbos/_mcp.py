"""MCP servers and toolsets whose listing, instructions and calls are DBOS steps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from dbos import DBOS
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import InstructionPart
from pydantic_ai.tools import AgentDepsT, RunContext, ToolDefinition
from pydantic_ai.toolsets import AbstractToolset, ToolsetTool, WrapperToolset
from typing_extensions import Self

from durable_kernel import (
    ToolReturned,
    capture_tool_outcome,
    dbos_mcp_step_name,
    is_mcp_toolset,
    mcp_tool_for_tool_def_sync,
    mcp_toolset_class_names,
    unknown_mcp_toolset_class,
    unwrap_recorded_tool_result,
)

from ._config import StepConfig, step_options
from ._context import in_workflow_code, step_run_context

__all__ = ('DBOSMCPServer', 'is_mcp_toolset', 'refuse_unknown_mcp_toolset')

_Instructions = str | InstructionPart | Sequence[str | InstructionPart] | None


def refuse_unknown_mcp_toolset(toolset: AbstractToolset[Any]) -> None:
    """Raise a `UserError` for an MCP client toolset of a class that `DBOSMCPServer` does not know on this line.

    Left to the tool-call wrapper, its tool listing and instructions would reach the server from workflow code,
    outside any step: not recorded, and fetched again (maybe differently) by a recovered workflow.

    Raises:
        UserError: The toolset's class comes from an MCP module but is not an MCP class of the installed line.
    """
    mcp_class = unknown_mcp_toolset_class(toolset)
    if mcp_class is None:
        return
    raise UserError(
        f'{toolset.label} is a `{type(toolset).__name__}` (an MCP client, `{mcp_class.__module__}.'
        f'{mcp_class.__qualname__}`), which `DBOSAgent` cannot make durable: its tool listing and instructions would '
        'reach the server from workflow code, outside DBOS steps. The MCP toolsets it makes durable on this '
        f'pydantic-ai line are: {mcp_toolset_class_names()}. Connect to the server with `pydantic_ai.mcp.MCPToolset` '
        '(`DBOSAgent` wraps it in a `DBOSMCPServer` itself).'
    )


@dataclass
class _RunCache:
    """What one agent run has already fetched from the server (recorded by a step, so recovery fetches it the same way)."""

    tool_defs: dict[str, ToolDefinition] | None = None
    instructions: list[_Instructions] = field(default_factory=list[_Instructions])


@dataclass(kw_only=True)
class DBOSMCPServer(WrapperToolset[AgentDepsT]):
    """An MCP toolset whose tool listing, instructions and tool calls are recorded as DBOS steps.

    It wraps the MCP classes of the installed pydantic-ai line: `MCPToolset` on both lines, and on 1.107 also
    `MCPServer*` and `FastMCPToolset` (which 2.x removed); any other toolset is refused with a `UserError`.
    Inside workflow code, tool listing, instructions and tool calls are the steps
    `{step_name_prefix}__mcp_server__{id}.get_tools`, `.get_instructions` and `.call_tool`
    (`{step_name_prefix}__mcp_server.…` for a server without an id).

    Tool definitions (and instructions) are cached for one agent run when the wrapped server's `cache_tools` is true,
    so the step sequence depends only on the run, never on what an earlier run in the same process fetched: a
    recovered workflow sees the same steps. With `cache_tools=False` every listing is a step.
    The agent creates a fresh wrapper (fresh cache) for each run.

    In workflow code the run holds no connection to the server: each step connects for its own duration, so no I/O
    happens outside steps and a server restart between two steps does not break the run.
    """

    step_name_prefix: str
    step_config: StepConfig | None = None
    _run_cache: _RunCache = field(default_factory=_RunCache, repr=False)
    # One entry per `__aenter__` not yet exited: whether it entered the wrapped toolset (outside workflow code).
    _entered_wrapped: list[bool] = field(default_factory=list[bool], repr=False)

    def __post_init__(self) -> None:
        # Only MCP toolsets have the listing and instructions this wrapper records: anything else would fail at run
        # time, or (a toolset that lists from elsewhere) be recorded under an MCP step name.
        if not is_mcp_toolset(self.wrapped):
            raise UserError(
                f'`DBOSMCPServer` wraps MCP toolsets ({mcp_toolset_class_names()} on this pydantic-ai line), not '
                f'{self.wrapped.label}. Pass that toolset to `DBOSAgent` as it is (each of its tool calls becomes a '
                'step), or connect to an MCP server with `pydantic_ai.mcp.MCPToolset`.'
            )

    @property
    def id(self) -> str | None:
        return self.wrapped.id

    @property
    def _cache_tools(self) -> bool:
        return bool(getattr(self.wrapped, 'cache_tools', False))

    def for_new_run(self) -> DBOSMCPServer[AgentDepsT]:
        """A copy of this wrapper with an empty per-run cache."""
        return DBOSMCPServer(wrapped=self.wrapped, step_name_prefix=self.step_name_prefix, step_config=self.step_config)

    async def __aenter__(self) -> Self:
        """Connect to the server outside workflow code; in workflow code, do nothing (each step connects itself).

        An agent run enters its toolsets in workflow code. A session opened there would be I/O outside any step, and
        it would outlive the steps that use it: a server that restarts (or a proxy that drops the session) between
        two steps fails every later step of the run, and a replayed HTTP session (the reference's requests, one
        session per step) hangs waiting for replies that belong to another session.
        """
        enter = not in_workflow_code()
        if enter:
            await self.wrapped.__aenter__()
        self._entered_wrapped.append(enter)
        return self

    async def __aexit__(self, *args: Any) -> bool | None:
        if self._entered_wrapped and self._entered_wrapped.pop():
            return await self.wrapped.__aexit__(*args)
        return None

    def visit_and_replace(
        self, visitor: Callable[[AbstractToolset[AgentDepsT]], AbstractToolset[AgentDepsT]]
    ) -> AbstractToolset[AgentDepsT]:
        # Already durable: offered to the visitor as a leaf, never wrapped twice.
        return visitor(self)

    def tool_for_tool_def(
        self, tool_def: ToolDefinition, *, ctx: RunContext[AgentDepsT] | None = None
    ) -> ToolsetTool[AgentDepsT]:
        """The wrapped server's tool for a definition it listed earlier, built without reaching the server.

        Args:
            tool_def: A definition the wrapped server listed (for example, recorded by the `get_tools` step).
            ctx: The run context. Required on pydantic-ai 2.x, where the tool takes its retry budget from it;
                not used on 1.107.

        Raises:
            UserError: On pydantic-ai 2.x, when `ctx` is missing.
        """
        return mcp_tool_for_tool_def_sync(self.wrapped, tool_def, ctx)

    def _options(self, operation: Literal['get_tools', 'get_instructions', 'call_tool']) -> Any:
        return step_options(dbos_mcp_step_name(self.step_name_prefix, self.wrapped.id, operation), self.step_config)

    async def get_tools(self, ctx: RunContext[AgentDepsT]) -> dict[str, ToolsetTool[AgentDepsT]]:
        """List the server's tools: a DBOS step inside workflow code (once per run when `cache_tools` is true)."""
        if not in_workflow_code():
            return await self.wrapped.get_tools(ctx)
        tool_defs = self._run_cache.tool_defs if self._cache_tools else None
        if tool_defs is None:

            async def get_tools_step() -> dict[str, ToolDefinition]:
                with step_run_context(ctx) as guarded:
                    async with self.wrapped:  # the step's own session
                        tools = await self.wrapped.get_tools(guarded)
                # `ToolsetTool` holds a schema validator: record only the definitions and rebuild the tools.
                return {name: tool.tool_def for name, tool in tools.items()}

            tool_defs = await DBOS.run_step_async(self._options('get_tools'), get_tools_step)
            if self._cache_tools:
                self._run_cache.tool_defs = tool_defs
        return {name: self.tool_for_tool_def(tool_def, ctx=ctx) for name, tool_def in tool_defs.items()}

    async def get_instructions(self, ctx: RunContext[AgentDepsT]) -> _Instructions:
        """The server's instructions: a DBOS step inside workflow code when the server includes them."""
        if not in_workflow_code():
            return await self.wrapped.get_instructions(ctx)
        if not getattr(self.wrapped, 'include_instructions', False):
            return None
        if self._cache_tools and self._run_cache.instructions:
            return self._run_cache.instructions[0]

        async def get_instructions_step() -> _Instructions:
            with step_run_context(ctx) as guarded:
                async with self.wrapped:
                    return await self.wrapped.get_instructions(guarded)

        instructions = await DBOS.run_step_async(self._options('get_instructions'), get_instructions_step)
        if self._cache_tools:
            self._run_cache.instructions[:] = [instructions]
        return instructions

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[AgentDepsT], tool: ToolsetTool[AgentDepsT]
    ) -> Any:
        """Call an MCP tool: a DBOS step inside workflow code whose control flow is recorded as data."""
        if not in_workflow_code():
            return await self.wrapped.call_tool(name, tool_args, ctx, tool)

        async def call_tool_step() -> Any:
            with step_run_context(ctx) as guarded:
                async with self.wrapped:  # the step's own session
                    outcome = await capture_tool_outcome(self.wrapped.call_tool(name, tool_args, guarded, tool))
            # A result is recorded as itself, as pydantic-ai's own `DBOSMCPServer` records it: a workflow rolled back
            # to the reference reads it as the tool's result (an outcome object would reach its model as the result).
            # Control flow stays an outcome, recorded as data (the reference would have raised it out of the step).
            return outcome.result if isinstance(outcome, ToolReturned) else outcome

        # The step holds the result itself (ours, and pydantic-ai 1.107's own `DBOSMCPServer`), an outcome of ours
        # (control flow, or a result recorded by an earlier release as a `ToolReturned`), or pydantic-ai 2.x's outcome.
        return unwrap_recorded_tool_result(await DBOS.run_step_async(self._options('call_tool'), call_tool_step))
