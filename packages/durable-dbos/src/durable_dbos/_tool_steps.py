"""Function-tool calls as DBOS steps (the reference runs them as plain workflow code and re-runs them on recovery)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dbos import DBOS
from pydantic_ai.exceptions import UserError
from pydantic_ai.tools import AgentDepsT, RunContext
from pydantic_ai.toolsets import AbstractToolset, ToolsetTool, WrapperToolset
from pydantic_ai.toolsets.function import FunctionToolsetTool

from durable_kernel import (
    ToolOutcome,
    capture_tool_outcome,
    dbos_tool_step_name,
    tool_unit_setting,
    unknown_mcp_toolset_class,
    unwrap_tool_outcome,
)

from ._child_workflows import ChildWorkflow, call_in_child_workflow, child_workflow_config
from ._config import StepConfig, step_options
from ._context import in_workflow_code, step_run_context
from ._mcp import is_mcp_toolset
from ._step_layout import tool_call_is_step

__all__ = ('DBOSToolStepToolset', 'UnnamedToolsetTools')


@dataclass
class UnnamedToolsetTools:
    """Which toolset without an id lists which tool, in one run's toolset tree.

    The call steps of such a toolset are named after the agent and the tool only. Tool names the model sees are unique
    in a run, but a toolset's own names need not be: two id-less toolsets behind different prefixes (or renames) may
    both define `search`, and their steps would have the same name, so a recovered workflow could not tell them
    apart. That case, and only that one, is refused.
    """

    owners: dict[str, AbstractToolset[Any]] = field(default_factory=dict[str, 'AbstractToolset[Any]'])

    def claim(self, tool_names: Iterable[str], toolset: AbstractToolset[Any]) -> None:
        """Record that `toolset` lists `tool_names`, or raise a `UserError` if another id-less toolset lists one."""
        for tool_name in tool_names:
            owner = self.owners.setdefault(tool_name, toolset)
            if owner is not toolset:
                raise UserError(
                    f'{owner.label} and {toolset.label} both define a tool {tool_name!r} and neither has an `id`: '
                    'DBOS would record their calls under the same step name. Pass a unique `id=` to each of them '
                    '(for example `FunctionToolset(tools, id="search_tools")`, or `@agent.toolset(id=...)`).'
                )


@dataclass
class DBOSToolStepToolset(WrapperToolset[AgentDepsT]):
    """Runs each call of the wrapped toolset's tools as the DBOS step `{agent}__toolset__{id}.call_tool.{tool}`.

    A toolset without an id (a `FunctionToolset()` or an `@agent.toolset` without `id=`) has the steps
    `{agent}__toolset.call_tool.{tool}`; two such toolsets of one run that list the same tool are refused.

    Tool listing stays in workflow code (it is deterministic for function toolsets); an MCP toolset that a dynamic
    toolset builds during the run is refused there, since its listing would not be. `ModelRetry`,
    `ApprovalRequired` and `CallDeferred` are recorded as the step's result (a `ToolOutcome`), not as its error, so
    DBOS never retries a step for control flow and a recovered workflow gets the same control flow back.
    A tool whose entry in `step_config_by_name` is `None` (every tool, with `steps_by_default=False`) runs as plain
    workflow code in new workflows; a recovered workflow makes each call a step or not as it recorded it.
    """

    agent_name: str = ''
    toolset_id: str | None = None
    step_config: StepConfig | None = None
    step_config_by_name: Mapping[str, StepConfig | None] = field(default_factory=dict[str, 'StepConfig | None'])
    unnamed_tools: UnnamedToolsetTools = field(default_factory=UnnamedToolsetTools)
    steps_by_default: bool = True
    """Whether calls of a new workflow are steps (`DBOSAgent(function_tool_steps=...)`)."""
    child_workflow: ChildWorkflow | None = None
    """The toolset's registered child workflow, for its tools whose metadata selects one (see `_child_workflows.py`)."""

    @property
    def id(self) -> str | None:
        return self.wrapped.id

    def visit_and_replace(
        self, visitor: Callable[[AbstractToolset[AgentDepsT]], AbstractToolset[AgentDepsT]]
    ) -> AbstractToolset[AgentDepsT]:
        # Already durable: offered to the visitor as a leaf, never wrapped twice.
        return visitor(self)

    async def get_tools(self, ctx: RunContext[AgentDepsT]) -> dict[str, ToolsetTool[AgentDepsT]]:
        """List the tools in workflow code (function toolsets list them without I/O).

        A toolset that builds its toolsets during the run (`@agent.toolset`) is checked first: an MCP toolset it built
        would list its tools and instructions from workflow code, outside any step, so it is refused.
        """
        if in_workflow_code():
            self._refuse_unrecorded_mcp_toolsets()
        tools = await super().get_tools(ctx)
        if self.toolset_id is None:
            self.unnamed_tools.claim(tools, self.wrapped)
        return tools

    def _refuse_unrecorded_mcp_toolsets(self) -> None:
        found: list[AbstractToolset[AgentDepsT]] = []

        def visit(leaf: AbstractToolset[AgentDepsT]) -> AbstractToolset[AgentDepsT]:
            # A `DBOSMCPServer` is offered as a leaf (its MCP toolset inside is durable); a bare MCP one is not.
            if is_mcp_toolset(leaf) or unknown_mcp_toolset_class(leaf) is not None:
                found.append(leaf)
            return leaf

        self.wrapped.visit_and_replace(visit)
        if found:
            raise UserError(
                f'{self.wrapped.label} built {found[0].label} during the run: an MCP toolset whose tool listing and '
                'instructions would reach the server from workflow code, outside DBOS steps. Wrap it where you build '
                f'it, `return DBOSMCPServer(toolset, step_name_prefix={self.agent_name!r})`, or give the MCP toolset '
                'to the agent itself.'
            )

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[AgentDepsT], tool: ToolsetTool[AgentDepsT]
    ) -> Any:
        """Call a tool: a DBOS step inside workflow code, a plain call elsewhere or when the tool opted out."""
        if not in_workflow_code():
            return await self.wrapped.call_tool(name, tool_args, ctx, tool)
        is_async = not isinstance(tool, FunctionToolsetTool) or tool.is_async
        child_config = child_workflow_config(tool.tool_def, is_async=is_async)
        if child_config is not None:
            # Before anything that waits: the child takes the parent's next step id when it starts.
            if self.child_workflow is None:
                raise UserError(
                    f'Tool {name!r} selects a DBOS child workflow, but {self.wrapped.label} registered none: the '
                    'workflow is registered when the agent is made durable, for the tools that select one then. Set '
                    "the tool's metadata before `DBOSAgent(...)` (or before `DBOSDurability` binds), rather than in a "
                    'toolset given at run time or a tool added later.'
                )
            return await call_in_child_workflow(self.child_workflow, name, tool_args, ctx, tool, child_config)
        step_name = dbos_tool_step_name(self.agent_name, self.toolset_id, name)
        if name in self.step_config_by_name:
            opted_out = self.step_config_by_name[name] is None
        else:  # pydantic-ai 2.78's `Tool(..., durable=False)` (DBOS has no per-tool metadata key)
            opted_out = tool_unit_setting(tool.tool_def, None) is False
        # A recovered workflow keeps the layout it recorded, whatever the settings are now (see `_step_layout.py`).
        if not await tool_call_is_step(step_name, default=self.steps_by_default, opted_out=opted_out):
            return await self.wrapped.call_tool(name, tool_args, ctx, tool)

        async def call_tool_step() -> ToolOutcome:
            with step_run_context(ctx) as guarded:
                return await capture_tool_outcome(self.wrapped.call_tool(name, tool_args, guarded, tool))

        options = step_options(
            step_name,
            self.step_config,
            self.step_config_by_name.get(name),
        )
        outcome = await DBOS.run_step_async(options, call_tool_step)
        return unwrap_tool_outcome(outcome)
