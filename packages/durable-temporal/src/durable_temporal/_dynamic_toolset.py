"""Dynamic toolsets (`@agent.toolset`, `DynamicToolset`): built, listed and called inside Temporal activities."""

from __future__ import annotations

import copy
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from pydantic_ai.messages import InstructionPart
from pydantic_ai.tools import AgentDepsT, RunContext, ToolDefinition
from pydantic_ai.toolsets import AbstractToolset, ToolsetTool
from temporalio import activity, workflow
from temporalio.workflow import ActivityConfig

from durable_kernel import (
    ARGS_VALIDATOR_UNITS,
    DynamicToolset,
    ListedInstructions,
    ToolOutcome,
    built_dynamic_tool,
    capture_tool_outcome,
    list_dynamic_toolset,
    listed_toolset_tools,
    unwrap_tool_outcome,
    validate_tool_arguments,
    validates_args_in_unit,
    with_args_validator_unit,
)

from ._config import ToolActivityConfig
from ._heartbeat import heartbeating_activity
from ._run_context import TemporalRunContext
from ._toolset import ActivityToolset, CallToolParams, GetToolsParams
from ._versioning import PER_RUN_LISTING_PATCH, patched

if TYPE_CHECKING:
    from pydantic_ai.agent import AbstractAgent

__all__ = ('DynamicToolsListing', 'TemporalDynamicToolset', 'ToolInfo')


@dataclass
class ToolInfo:
    """One tool of a dynamic toolset as listed in the get-tools activity (the first two fields are wire format)."""

    tool_def: ToolDefinition
    max_retries: int
    toolset_instructions: ListedInstructions = None
    """The toolset's instructions at listing time, repeated on every tool (older readers ignore the field)."""
    has_args_validator: bool = False
    """Whether the tool has an `args_validator`, which then runs in the validate-args activity (pydantic-ai 2.x's
    field of the same name; `False` where the installed pydantic-ai validates no arguments in units, and in results
    recorded before)."""


@dataclass
class DynamicToolsListing:
    """A listing as pydantic-ai 2.x's get-tools activity returns it: the tools, and the toolset's instructions once.

    Ours returns it only for a toolset that has instructions but no tools (they have no `ToolInfo` to ride on);
    every other listing keeps the `{name: ToolInfo}` shape that earlier releases and 1.107's reference read. It is
    also how a get-tools result recorded by pydantic-ai 2.x's own integration is read back.
    """

    tools: dict[str, ToolInfo]
    instructions: ListedInstructions = None


class TemporalDynamicToolset(ActivityToolset[AgentDepsT]):
    """Builds the dynamic toolset inside activities: one to list its tools (and instructions), one per tool call.

    On a pydantic-ai whose durable integrations validate tool arguments in units of their own (`ARGS_VALIDATOR_UNITS`),
    a tool's `args_validator` (which exists only where the toolset is built) runs in the
    `agent__{name}__dynamic_toolset__{id}__validate_args` activity before the call, in both forms, as pydantic-ai 2.x
    does; before, it did not run at all.
    """

    def __init__(
        self,
        toolset: DynamicToolset[AgentDepsT],
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
            'dynamic toolset',
            'a dynamic toolset is only built inside activities, so its tools cannot run in workflow code',
        )
        self._listed_instructions: ListedInstructions = None
        self._per_run_step = toolset.per_run_step
        self._run_listing: dict[str, ToolInfo] | DynamicToolsListing | None = None

        async def get_tools(params: GetToolsParams, deps: Any) -> dict[str, ToolInfo] | DynamicToolsListing:
            ctx = await self.context_in_activity(params.serialized_run_context, deps)
            tools, instructions = await list_dynamic_toolset(toolset, ctx)
            if not tools and instructions is not None:
                # Instructions without tools (a toolset that only instructs): nothing to repeat them on.
                return DynamicToolsListing(tools={}, instructions=instructions)
            return {
                name: ToolInfo(
                    tool_def=tool.tool_def,
                    max_retries=tool.max_retries,
                    toolset_instructions=instructions,
                    has_args_validator=validates_args_in_unit(tool),
                )
                for name, tool in tools.items()
            }

        @asynccontextmanager
        async def built_tool(
            params: CallToolParams, deps: Any, activity_kind: str
        ) -> AsyncGenerator[tuple[AbstractToolset[AgentDepsT], ToolsetTool[AgentDepsT], RunContext[AgentDepsT]]]:
            # The toolset built for this run step inside the activity, and the called tool in it.
            ctx = await self.context_in_activity(params.serialized_run_context, deps)
            where = f'when built inside the {activity_kind} activity'
            async with built_dynamic_tool(toolset, ctx, params.name, where=where) as (run_toolset, tool):
                yield run_toolset, tool, ctx

        async def call_tool(params: CallToolParams, deps: Any) -> ToolOutcome:
            async with built_tool(params, deps, 'call-tool') as (run_toolset, tool, ctx):
                return await self.call_tool_outcome(run_toolset, params.name, params.tool_args, ctx, tool)

        async def validate_args(params: CallToolParams, deps: Any) -> ToolOutcome:
            async with built_tool(params, deps, 'validate-args') as (_, tool, ctx):
                # Only the verdict crosses back: the call-tool activity validates the arguments again. Without a
                # validation context, like the call-tool activity (the run context carries none across).

                async def validate() -> None:  # the validated arguments stay here: only the verdict is recorded
                    await validate_tool_arguments(tool, params.tool_args, ctx)

                return await capture_tool_outcome(validate())

        get_tools.__annotations__['deps'] = deps_type
        call_tool.__annotations__['deps'] = deps_type
        validate_args.__annotations__['deps'] = deps_type
        self.get_tools_activity = activity.defn(name=self.activity_name('dynamic_toolset_get_tools'))(
            heartbeating_activity(get_tools)
        )
        self.call_tool_activity = activity.defn(name=self.activity_name('dynamic_toolset_call_tool'))(
            heartbeating_activity(call_tool)
        )
        self.validate_args_activity = activity.defn(name=self.activity_name('dynamic_toolset_validate_args'))(
            heartbeating_activity(validate_args)
        )

    @property
    def temporal_activities(self) -> list[Callable[..., Any]]:
        """The get-tools and call-tool activities (and validate-args, where `ARGS_VALIDATOR_UNITS`)."""
        if ARGS_VALIDATOR_UNITS:
            return [self.get_tools_activity, self.call_tool_activity, self.validate_args_activity]
        return [self.get_tools_activity, self.call_tool_activity]

    async def for_run(self, ctx: RunContext[AgentDepsT]) -> AbstractToolset[AgentDepsT]:
        """A per-run copy, so the instructions listed in one run never leak into another."""
        if not workflow.in_workflow():
            return await super().for_run(ctx)
        run_copy = copy.copy(self)
        run_copy._listed_instructions = None
        run_copy._run_listing = None
        return run_copy

    async def get_tools(self, ctx: RunContext[AgentDepsT]) -> dict[str, ToolsetTool[AgentDepsT]]:
        """List the tools (and remember the instructions) in the get-tools activity.

        At every run step, or once per run for a toolset built with `per_run_step=False`.
        """
        if not workflow.in_workflow():
            return await super().get_tools(ctx)
        listing = self._run_listing
        if listing is None or not patched(PER_RUN_LISTING_PATCH):
            listing = cast(
                'dict[str, ToolInfo] | DynamicToolsListing',
                await self.execute(self.get_tools_activity, ctx, f'get tools: {self.id}'),
            )
            if not self._per_run_step:
                self._run_listing = listing
        if isinstance(listing, DynamicToolsListing):
            infos = listing.tools
            self._listed_instructions = listing.instructions
        else:
            infos = listing
            self._listed_instructions = next((info.toolset_instructions for info in infos.values()), None)
        tools = listed_toolset_tools(self, infos)
        for name, info in infos.items():
            # Set only where the installed pydantic-ai validates in units (by our listing, or by 2.x's own).
            if info.has_args_validator:
                tools[name] = self._validated_in_activity(name, tools[name])
        return tools

    def _validated_in_activity(self, name: str, tool: ToolsetTool[AgentDepsT]) -> ToolsetTool[AgentDepsT]:
        async def run_unit(ctx: RunContext[Any], args: dict[str, Any]) -> None:
            outcome: ToolOutcome = await self.execute(
                self.validate_args_activity,
                ctx,
                f'validate tool args: {self.id}:{name}',
                params=lambda serialized: CallToolParams(
                    name=name, tool_args=args, serialized_run_context=serialized, tool_def=tool.tool_def
                ),
                tool_name=name,
            )
            unwrap_tool_outcome(outcome)

        return with_args_validator_unit(tool, run_unit)

    async def get_instructions(
        self, ctx: RunContext[AgentDepsT]
    ) -> str | InstructionPart | Sequence[str | InstructionPart] | None:
        """The instructions listed with the tools of this run step (the agent lists tools first)."""
        if not workflow.in_workflow():
            return await super().get_instructions(ctx)
        return self._listed_instructions

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[AgentDepsT], tool: ToolsetTool[AgentDepsT]
    ) -> Any:
        """Call the tool in the call-tool activity."""
        if not workflow.in_workflow():
            return await super().call_tool(name, tool_args, ctx, tool)
        return await self.call_tool_activity_from_workflow(self.call_tool_activity, name, tool_args, ctx, tool.tool_def)
