"""The base of toolsets whose I/O runs in Temporal activities, and the default choice of wrapper per toolset kind."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, with_config
from pydantic_ai.exceptions import UserError
from pydantic_ai.tools import AgentDepsT, RunContext, ToolDefinition
from pydantic_ai.toolsets import AbstractToolset, FunctionToolset, ToolsetTool, WrapperToolset
from temporalio import workflow
from temporalio.workflow import ActivityConfig
from typing_extensions import Self

from durable_kernel import (
    DynamicToolset,
    TemporalActivityKind,
    ToolOutcome,
    capture_tool_outcome,
    merge_config,
    temporal_activity_name_with_prefix,
    unwrap_tool_outcome,
)

from ._config import ToolActivityConfig, execute_unit, merge_activity_config
from ._deps_refs import deps_for_activity
from ._run_context import TemporalRunContext, resolve_activity_context

if TYPE_CHECKING:
    from pydantic_ai.agent import AbstractAgent

__all__ = (
    'ActivityToolset',
    'CallToolParams',
    'GetToolsParams',
    'TemporalWrapperToolset',
    'temporalize_toolset',
)


@dataclass
@with_config(ConfigDict(arbitrary_types_allowed=True))
class GetToolsParams:
    """Argument of the get-tools and get-instructions activities (field names are wire format)."""

    serialized_run_context: Any


@dataclass
@with_config(ConfigDict(arbitrary_types_allowed=True))
class CallToolParams:
    """Argument of the call-tool activities (field names are wire format)."""

    name: str
    tool_args: dict[str, Any]
    serialized_run_context: Any
    tool_def: ToolDefinition | None


class TemporalWrapperToolset(WrapperToolset[AgentDepsT], ABC):
    """A toolset wrapper that moves the wrapped toolset's I/O into Temporal activities.

    Subclass it in a custom `temporalize_toolset_func` of [`TemporalAgent`][durable_temporal.TemporalAgent] to make
    another kind of leaf toolset durable: implement `temporal_activities` (the `@activity.defn` callables to register
    on the worker) and the methods that must run in them. Inside a workflow the wrapper is used as is for the whole
    run (it is never re-created or entered per run); outside a workflow it delegates to the wrapped toolset.
    """

    @property
    def id(self) -> str:
        """The wrapped toolset's id, which names its activities."""
        toolset_id = self.wrapped.id
        assert toolset_id is not None, 'TemporalAgent checks that leaf toolsets have an id'
        return toolset_id

    @property
    @abstractmethod
    def temporal_activities(self) -> list[Callable[..., Any]]:
        """The activities to register on the worker for this toolset."""
        raise NotImplementedError

    async def for_run(self, ctx: RunContext[AgentDepsT]) -> AbstractToolset[AgentDepsT]:
        return self

    async def for_run_step(self, ctx: RunContext[AgentDepsT]) -> AbstractToolset[AgentDepsT]:
        return self

    def visit_and_replace(
        self, visitor: Callable[[AbstractToolset[AgentDepsT]], AbstractToolset[AgentDepsT]]
    ) -> AbstractToolset[AgentDepsT]:
        # Already durable: replacing the leaf again would lose its activities.
        return self

    async def __aenter__(self) -> Self:
        # In a workflow the wrapped toolset is entered inside each activity that needs it, never in workflow code.
        if not workflow.in_workflow():
            await self.wrapped.__aenter__()
        return self

    async def __aexit__(self, *args: Any) -> bool | None:
        if not workflow.in_workflow():
            return await self.wrapped.__aexit__(*args)
        return None


class ActivityToolset(TemporalWrapperToolset[AgentDepsT], ABC):
    """Shared machinery of our wrappers: configs, run-context transport, and tool outcomes as data."""

    def __init__(
        self,
        wrapped: AbstractToolset[AgentDepsT],
        *,
        activity_name_prefix: str,
        activity_config: ActivityConfig,
        tool_activity_config: Mapping[str, ToolActivityConfig],
        deps_type: type[AgentDepsT],
        run_context_type: type[TemporalRunContext[AgentDepsT]],
        agent: AbstractAgent[AgentDepsT, Any] | None,
    ) -> None:
        super().__init__(wrapped)
        self.activity_name_prefix = activity_name_prefix
        self.activity_config = merge_activity_config(activity_config)
        self.tool_activity_config: dict[str, ToolActivityConfig] = dict(tool_activity_config)
        self.deps_type = deps_type
        self.run_context_type = run_context_type
        self.agent = agent
        self.local_activities = False
        """Whether every activity of this toolset runs as a local activity (set by the agent's `local_activities=`)."""
        self.local_tools: frozenset[str] = frozenset()
        """The tools whose calls run as local activities (`LocalActivity` in the agent's `tool_activity_config`).

        Attributes set by the agent after construction, so that `temporalize_toolset_func`'s signature stays as is."""

    def refuse_disabled_tool_activities(self, kind: str, reason: str) -> None:
        """Raise a `UserError` if a tool's activity is disabled (`False`) although the tool cannot run in workflow code.

        Args:
            kind: What this toolset is, for the message (`'MCP toolset'`, `'dynamic toolset'`).
            reason: Why its tools cannot run in workflow code.
        """
        for tool_name, config in self.tool_activity_config.items():
            if config is False:
                raise UserError(
                    f'Tool {tool_name!r} of {kind} {self.id!r} has its Temporal activity disabled '
                    f'(`tool_activity_config` is `False`), but {reason}. Give the tool an activity config instead of '
                    '`False`.'
                )

    def activity_name(self, kind: TemporalActivityKind) -> str:
        """The name of one of this toolset's activities, e.g. `agent__a__toolset__<agent>__call_tool` (the kernel's)."""
        return temporal_activity_name_with_prefix(self.activity_name_prefix, kind, self.id)

    def activity_options(
        self, summary: str, tool_name: str | None = None, tool_config: ActivityConfig | None = None
    ) -> ActivityConfig:
        """The config of one activity: this toolset's config, the tool's on top, and a default summary.

        For a tool in `local_tools`, the tool's layer is its `LocalActivity`'s config (local-activity keys, such as
        `local_retry_threshold`, included: `execute` keeps them). `tool_config`, when given, is the tool's layer (what
        the tool says of itself, when the agent's `tool_activity_config` has nothing for it).
        """
        if tool_config is None and tool_name is not None:
            configured = self.tool_activity_config.get(tool_name)
            tool_config = configured if configured is not False else None
        config = merge_activity_config(self.activity_config, tool_config or None)
        return ActivityConfig(**merge_config({'summary': summary}, config))

    def runs_locally(self, tool_name: str | None = None) -> bool:
        """Whether an activity of this toolset (a call of `tool_name`, if given) runs as a local activity."""
        return self.local_activities or (tool_name is not None and tool_name in self.local_tools)

    async def execute(
        self,
        activity_fn: Callable[..., Any],
        ctx: RunContext[AgentDepsT],
        summary: str,
        *,
        params: Callable[[Any], Any] = lambda serialized: GetToolsParams(serialized_run_context=serialized),
        tool_name: str | None = None,
        tool_config: ActivityConfig | None = None,
    ) -> Any:
        """Run one of this toolset's activities from workflow code, regular or local as configured, and return its result.

        Args:
            activity_fn: The activity.
            ctx: The run context, sent with the deps.
            summary: The activity's summary.
            params: Builds the activity's first argument from the serialized run context.
            tool_name: The tool called, whose config applies on top of the toolset's.
            tool_config: The tool's config, if it is not the agent's `tool_activity_config` for `tool_name`.
        """
        local = self.runs_locally(tool_name)
        serialized, deps = deps_for_activity(self.run_context_type, ctx, local=local)
        return await execute_unit(
            activity_fn, [params(serialized), deps], self.activity_options(summary, tool_name, tool_config), local=local
        )

    async def context_in_activity(self, serialized_run_context: Any, deps: Any) -> RunContext[AgentDepsT]:
        """Rebuild the run context inside an activity (fetching deps that an earlier activity carried)."""
        return await resolve_activity_context(
            self.run_context_type, serialized_run_context, deps=deps, deps_type=self.deps_type, agent=self.agent
        )

    def activity_arguments(self, ctx: RunContext[AgentDepsT]) -> tuple[Any, Any]:
        """The serialized run context and deps to send an activity from workflow code (large deps only once)."""
        return deps_for_activity(self.run_context_type, ctx)

    def _get_tools_arguments(self, ctx: RunContext[AgentDepsT]) -> list[Any]:
        serialized, deps = self.activity_arguments(ctx)
        return [GetToolsParams(serialized_run_context=serialized), deps]

    async def call_tool_outcome(
        self,
        toolset: AbstractToolset[AgentDepsT],
        name: str,
        tool_args: dict[str, Any],
        ctx: RunContext[AgentDepsT],
        tool: ToolsetTool[AgentDepsT],
    ) -> ToolOutcome:
        """Call a tool inside an activity, returning `ModelRetry`/approval/deferral as data.

        The arguments were validated in workflow code but arrive as plain JSON data, so they are validated again.
        """
        args = tool.args_validator.validate_python(tool_args)
        return await capture_tool_outcome(toolset.call_tool(name, args, ctx, tool))

    async def call_tool_activity_from_workflow(
        self,
        activity_fn: Callable[..., Any],
        name: str,
        tool_args: dict[str, Any],
        ctx: RunContext[AgentDepsT],
        tool_def: ToolDefinition | None,
        *,
        tool_config: ActivityConfig | None = None,
    ) -> Any:
        """Schedule a call-tool activity and turn its outcome back into a return value or control-flow exception."""
        outcome: ToolOutcome = await self.execute(
            activity_fn,
            ctx,
            f'call tool: {self.id}:{name}',
            params=lambda serialized: CallToolParams(
                name=name, tool_args=tool_args, serialized_run_context=serialized, tool_def=tool_def
            ),
            tool_name=name,
            tool_config=tool_config,
        )
        return unwrap_tool_outcome(outcome)


def temporalize_toolset(
    toolset: AbstractToolset[AgentDepsT],
    activity_name_prefix: str,
    activity_config: ActivityConfig,
    tool_activity_config: dict[str, ActivityConfig | Literal[False]],
    deps_type: type[AgentDepsT],
    run_context_type: type[TemporalRunContext[AgentDepsT]] = TemporalRunContext[AgentDepsT],
    agent: AbstractAgent[AgentDepsT, Any] | None = None,
) -> AbstractToolset[AgentDepsT]:
    """Wrap a leaf toolset so its I/O runs in Temporal activities; the default `temporalize_toolset_func`.

    `FunctionToolset`, `DynamicToolset` and `MCPToolset` are wrapped (on pydantic-ai 1.107 also `MCPServer*` and
    `FastMCPToolset`); an MCP toolset of any other class is refused, since its calls would reach the server from
    workflow code; any other toolset is returned unchanged (its methods then run in workflow code).

    Args:
        toolset: The leaf toolset.
        activity_name_prefix: `agent__{agent name}`.
        activity_config: The activity config for this toolset (base config merged with the toolset's).
        tool_activity_config: Per-tool configs by tool name; `False` runs an async function tool in the workflow.
        deps_type: The agent's `deps_type`, used to (de)serialize `deps` for activities.
        run_context_type: The run context type used in activities.
        agent: The agent re-attached as `ctx.agent` inside activities.

    Returns:
        The wrapper, or `toolset` itself.

    Raises:
        UserError: The toolset is an MCP client of a class that cannot be made durable on the installed line.
    """
    options: dict[str, Any] = {
        'activity_name_prefix': activity_name_prefix,
        'activity_config': activity_config,
        'tool_activity_config': tool_activity_config,
        'deps_type': deps_type,
        'run_context_type': run_context_type,
        'agent': agent,
    }
    if isinstance(toolset, FunctionToolset):
        from ._function_toolset import TemporalFunctionToolset

        return TemporalFunctionToolset[AgentDepsT](toolset, **options)
    if isinstance(toolset, DynamicToolset):
        from ._dynamic_toolset import TemporalDynamicToolset

        return TemporalDynamicToolset[AgentDepsT](toolset, **options)
    from ._mcp import TemporalMCPToolset, is_mcp_toolset, refuse_unknown_mcp_toolset

    if is_mcp_toolset(toolset):
        return TemporalMCPToolset[AgentDepsT](toolset, **options)
    refuse_unknown_mcp_toolset(toolset)
    return toolset
