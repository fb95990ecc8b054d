"""Function tools called in Temporal activities (their listing stays in workflow code: it does no I/O)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from pydantic_ai.exceptions import UserError
from pydantic_ai.tools import AgentDepsT, RunContext
from pydantic_ai.toolsets import FunctionToolset, ToolsetTool
from pydantic_ai.toolsets.function import FunctionToolsetTool
from temporalio import activity, workflow
from temporalio.workflow import ActivityConfig

from durable_kernel import (
    ToolOutcome,
    called_function_tool,
    capture_tool_outcome,
    temporal_child_workflow_name,
    tool_unit_setting,
    unwrap_tool_outcome,
    validate_tool_arguments,
    with_args_validator_unit,
)

from ._child_workflow import (
    child_workflow_config,
    define_child_workflow,
    refuse_unregistered_child_workflow,
    selects_child_workflow,
)
from ._config import ToolActivityConfig, validate_activity_config
from ._deps_refs import deps_for_activity
from ._heartbeat import heartbeating_activity
from ._run_context import TemporalRunContext, activity_run_context
from ._toolset import ActivityToolset, CallToolParams

if TYPE_CHECKING:
    from pydantic_ai.agent import AbstractAgent

__all__ = ('TemporalFunctionToolset',)


def _sync_tool_error(tool_name: str, toolset_id: str) -> UserError:
    return UserError(
        f'Tool {tool_name!r} of toolset {toolset_id!r} has its Temporal activity disabled '
        '(`tool_activity_config` is `False`), but it is a sync function: sync tools run in threads, which workflow '
        'code cannot use. Make the tool function `async`, or give it an activity config instead of `False`.'
    )


class TemporalFunctionToolset(ActivityToolset[AgentDepsT]):
    """Runs each function-tool call in the `agent__{name}__toolset__{id}__call_tool` activity.

    A tool whose metadata is `{'temporal': {'child_workflow': ChildWorkflowConfig(...)}}` runs as the child workflow
    `agent__{name}__toolset__{id}__call_tool__child_workflow` instead (pydantic-ai 2.68's names), unless the agent's
    `tool_activity_config` names the tool.

    With `validate_args_in_activity` (the capability form, on a pydantic-ai whose `TemporalDurability` does the same), a
    tool's `args_validator` runs in the `agent__{name}__toolset__{id}__validate_args` activity instead of in workflow
    code, where I/O in it would break the workflow.
    """

    def __init__(
        self,
        toolset: FunctionToolset[AgentDepsT],
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
        for tool_name, config in self.tool_activity_config.items():
            tool = toolset.tools.get(tool_name)
            if config is False and tool is not None and not tool.function_schema.is_async:
                raise _sync_tool_error(tool_name, self.id)

        async def tool_in_activity(params: CallToolParams, ctx: RunContext[AgentDepsT]) -> ToolsetTool[AgentDepsT]:
            # `tool_def` is `None` when scheduled by an earlier release or the reference: the activity lists the tools.
            return await called_function_tool(
                toolset, ctx, params.name, tool_def=params.tool_def, where='on this worker'
            )

        async def call_tool(params: CallToolParams, deps: Any) -> ToolOutcome:
            ctx = await self.context_in_activity(params.serialized_run_context, deps)
            tool = await tool_in_activity(params, ctx)
            return await self.call_tool_outcome(toolset, params.name, params.tool_args, ctx, tool)

        async def validate_args(params: CallToolParams, deps: Any) -> ToolOutcome:
            ctx = await self.context_in_activity(params.serialized_run_context, deps)
            tool = await tool_in_activity(params, ctx)

            async def validate() -> None:
                # Only the validator's verdict crosses back (`None`, or its `ModelRetry`, approval or deferral): the
                # call-tool activity validates the arguments again, as pydantic-ai 2.x's does.
                # Without a validation context, like the call-tool activity (the run context carries none across).
                await validate_tool_arguments(tool, params.tool_args, ctx)

            return await capture_tool_outcome(validate())

        async def call_tool_in_child_workflow(params: CallToolParams, deps: Any) -> ToolOutcome:
            # Workflow code: the deps came inline (see `_call_in_child_workflow`), and the tool body may start
            # activities and child workflows of its own, recorded in this child's history.
            ctx = activity_run_context(
                self.run_context_type, params.serialized_run_context, deps=deps, agent=self.agent
            )
            tool = await tool_in_activity(params, ctx)
            return await self.call_tool_outcome(toolset, params.name, params.tool_args, ctx, tool)

        self.child_workflow_name = temporal_child_workflow_name(self.activity_name_prefix, self.id)
        """The child workflow type of the tools that select one (pydantic-ai 2.68's name)."""
        self.child_workflow = define_child_workflow(
            self.child_workflow_name,
            call_tool_in_child_workflow,
            {'params': CallToolParams, 'deps': deps_type, 'return': ToolOutcome},
        )
        call_tool.__annotations__['deps'] = deps_type
        validate_args.__annotations__['deps'] = deps_type
        self.call_tool_activity = activity.defn(name=self.activity_name('toolset_call_tool'))(
            heartbeating_activity(call_tool)
        )
        self.validate_args_activity = activity.defn(name=self.activity_name('toolset_validate_args'))(
            heartbeating_activity(validate_args)
        )
        self.validate_args_in_activity = False
        """Whether a tool's `args_validator` runs in the validate-args activity (set by the capability form before
        the activities are registered, on a pydantic-ai that does the same: `ARGS_VALIDATOR_UNITS`)."""

    @property
    def temporal_activities(self) -> list[Callable[..., Any]]:
        """The call-tool activity, and the validate-args one where tool arguments are validated in activities."""
        if self.validate_args_in_activity:
            return [self.call_tool_activity, self.validate_args_activity]
        return [self.call_tool_activity]

    @property
    def temporal_workflows(self) -> list[type]:
        """The child workflow type, if a tool selects a child workflow now (read when a worker is configured).

        Read then, rather than when the agent is built, so that tools added later (`@agent.tool`) count. Each tool's
        config is checked here too, so that a mistake fails the worker's configuration, not a workflow.
        """
        selected = False
        for name, tool in cast('FunctionToolset[AgentDepsT]', self.wrapped).tools.items():
            if name in self.tool_activity_config or not selects_child_workflow(tool.metadata):
                continue
            child_workflow_config(tool.tool_def, is_async=tool.function_schema.is_async)
            selected = True
        return [self.child_workflow] if selected else []

    def _child_workflow_config(self, name: str, tool: ToolsetTool[AgentDepsT]) -> Any:
        if name in self.tool_activity_config:  # the agent's per-tool config wins over the tool's own metadata
            return None
        is_async = not isinstance(tool, FunctionToolsetTool) or tool.is_async
        return child_workflow_config(tool.tool_def, is_async=is_async)

    async def _call_in_child_workflow(
        self,
        name: str,
        tool_args: dict[str, Any],
        ctx: RunContext[AgentDepsT],
        tool: ToolsetTool[AgentDepsT],
        config: Mapping[str, Any],
    ) -> Any:
        refuse_unregistered_child_workflow(self.child_workflow_name, self.id)
        options = dict(config)
        # pydantic-ai 2.68's default id; drawn from the workflow's random sequence, so a replay draws the same one.
        options.setdefault('id', f'{workflow.info().workflow_id}--{workflow.uuid4()}')
        # Always inline (`local=True`): a child workflow cannot fetch deps that an activity's input carried.
        serialized, deps = deps_for_activity(self.run_context_type, ctx, local=True)
        params = CallToolParams(
            name=name, tool_args=tool_args, serialized_run_context=serialized, tool_def=tool.tool_def
        )
        outcome: ToolOutcome = await workflow.execute_child_workflow(
            cast(Any, self.child_workflow).run, args=[params, deps], **options
        )
        return unwrap_tool_outcome(outcome)

    async def get_tools(self, ctx: RunContext[AgentDepsT]) -> dict[str, ToolsetTool[AgentDepsT]]:
        """The tools; in a workflow, with validate-args activities, each `args_validator` is that activity."""
        tools = await super().get_tools(ctx)
        if not self.validate_args_in_activity or not workflow.in_workflow():
            return tools
        validated: dict[str, ToolsetTool[AgentDepsT]] = {}
        for name, tool in tools.items():
            own = self._own_setting(name, tool)
            # A tool whose activity is disabled runs in workflow code: its validator stays there too.
            if (
                tool.args_validator_func is not None
                and self.tool_activity_config.get(name) is not False
                and own is not False
            ):
                tool = self._validated_in_activity(name, tool, own)
            validated[name] = tool
        return validated

    def _own_setting(self, name: str, tool: ToolsetTool[AgentDepsT]) -> Any:
        """What the tool says of its activity (pydantic-ai 2.78), below the agent's `tool_activity_config`.

        Its `metadata={'temporal': ActivityConfig | False}`, or `durable=False` to run in workflow code; `None` when it
        says nothing or `tool_activity_config` names the tool.
        """
        if name in self.tool_activity_config or selects_child_workflow(tool.tool_def.metadata):
            return None
        return tool_unit_setting(tool.tool_def, 'temporal', config_label='ActivityConfig')

    def _validated_in_activity(self, name: str, tool: ToolsetTool[AgentDepsT], own: Any) -> ToolsetTool[AgentDepsT]:
        tool_config = validate_activity_config(own, f"the tool {name!r}'s `metadata['temporal']`") if own else None

        async def run_unit(ctx: RunContext[Any], args: dict[str, Any]) -> None:
            # The definition always crosses, as pydantic-ai 2.x sends it: the activity rebuilds the tool from it.
            outcome: ToolOutcome = await self.execute(
                self.validate_args_activity,
                ctx,
                f'validate tool args: {self.id}:{name}',
                params=lambda serialized: CallToolParams(
                    name=name, tool_args=args, serialized_run_context=serialized, tool_def=tool.tool_def
                ),
                tool_name=name,
                tool_config=tool_config,
            )
            unwrap_tool_outcome(outcome)

        return with_args_validator_unit(tool, run_unit)

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[AgentDepsT], tool: ToolsetTool[AgentDepsT]
    ) -> Any:
        """Call the tool in its activity (or inline in the workflow when its activity is disabled)."""
        if not workflow.in_workflow():
            return await super().call_tool(name, tool_args, ctx, tool)
        child_config = self._child_workflow_config(name, tool)
        if child_config is not None:
            return await self._call_in_child_workflow(name, tool_args, ctx, tool, child_config)
        setting = self.tool_activity_config.get(name)
        own = self._own_setting(name, tool)
        if setting is False or own is False:
            if isinstance(tool, FunctionToolsetTool) and not tool.is_async:
                raise _sync_tool_error(name, self.id)
            return await super().call_tool(name, tool_args, ctx, tool)
        tool_config = validate_activity_config(own, f"the tool {name!r}'s `metadata['temporal']`") if own else None
        # The definition crosses only for a tool with its own `prepare`: listing again in the activity would run that
        # function a second time; any other tool lists there exactly as here, and the history stays smaller.
        source = cast('FunctionToolset[AgentDepsT]', self.wrapped).tools.get(name)
        tool_def = tool.tool_def if source is not None and source.prepare is not None else None
        return await self.call_tool_activity_from_workflow(
            self.call_tool_activity, name, tool_args, ctx, tool_def, tool_config=tool_config
        )
