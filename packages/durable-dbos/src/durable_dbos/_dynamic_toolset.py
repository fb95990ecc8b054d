"""Dynamic toolsets (`DynamicToolset`, `@agent.toolset(id=...)`, a dynamic capability's tools) as DBOS steps.

Only the capability form (`DBOSDurability`) does this, as pydantic-ai 2.x's `DBOSDurability` does: the toolset's
function is user code that may do I/O (open an MCP connection, read a database), so it runs inside steps, never in
workflow code. One step builds the toolset and lists its tools and instructions; each tool call is a step that builds
it again and calls the tool there. A recovered workflow gets both results back without calling the function again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from dbos import DBOS
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import InstructionPart
from pydantic_ai.tools import AgentDepsT, RunContext
from pydantic_ai.toolsets import AbstractToolset, ToolsetTool, WrapperToolset

from durable_kernel import (
    ListedDynamicTool as KernelListedDynamicTool,
)
from durable_kernel import (
    ListedDynamicTools as KernelListedDynamicTools,
)
from durable_kernel import (
    ListedInstructions,
    ToolOutcome,
    built_dynamic_tool,
    capture_tool_outcome,
    dbos_dynamic_toolset_step_name,
    listed_dynamic_toolset,
    listed_toolset_tools,
    unwrap_recorded_tool_result,
    unwrap_tool_outcome,
    validate_tool_arguments,
    with_args_validator_unit,
)

from ._config import StepConfig, step_options
from ._context import in_workflow_code, step_run_context

__all__ = ('DBOSDynamicToolset', 'ListedDynamicTools')


@dataclass
class ListedDynamicTool(KernelListedDynamicTool):
    """The kernel's listed tool, under this module's name.

    DBOS pickles a step's output with its class's path: listings recorded by earlier releases name this class.
    """


@dataclass
class ListedDynamicTools(KernelListedDynamicTools):
    """The kernel's listing, under this module's name (see `ListedDynamicTool`).

    DBOS unpickles a listing recorded by pydantic-ai 2.x with its own class, whose attributes are the same.
    """


async def _validate_and_call(
    toolset: AbstractToolset[AgentDepsT],
    name: str,
    tool_args: dict[str, Any],
    ctx: RunContext[AgentDepsT],
    tool: ToolsetTool[AgentDepsT],
    *,
    run_args_validator: bool = True,
) -> Any:
    # The workflow only parsed the arguments (the real tool exists only in the step): validated here, and invalid
    # ones ask the model to retry, recorded as the step's result, as a plain run would (the agent counts the retry).
    # The tool's own `args_validator` runs here too for a tool listed without the `.validate_args` step (pydantic-ai
    # without it, or a listing recorded before), before the call.
    args = await validate_tool_arguments(tool, tool_args, ctx, run_validator=run_args_validator)
    return await toolset.call_tool(name, args, ctx, tool)


@dataclass
class DBOSDynamicToolset(WrapperToolset[AgentDepsT]):
    """Runs a dynamic toolset inside DBOS steps: `{agent}__dynamic_toolset__{id}.get_tools` and `.call_tool`.

    In workflow code the toolset's function is never called: the listing step builds the toolset (and enters it, so
    an MCP toolset connects there), lists its tools and instructions, and exits it; each call step builds and enters
    it again, validates the arguments against the real tool and calls it. The run context the function and the tools
    get refuses `ctx.enqueue()` and `ctx.cancel()` (a recovered workflow would not repeat them). `ModelRetry`,
    `ApprovalRequired` and `CallDeferred` are recorded as the call step's result, not as its error.

    Outside workflow code it is the dynamic toolset itself (steps there would be plain calls anyway).
    """

    agent_name: str = ''
    step_config: StepConfig | None = None
    _listed_instructions: ListedInstructions = field(default=None, init=False, repr=False)

    @property
    def id(self) -> str | None:
        return self.wrapped.id

    def _step_name(self, operation: Any) -> str:
        toolset_id = self.wrapped.id
        if toolset_id is None:  # pragma: no cover - `DurableToolsetPlan` only wraps dynamic toolsets with an id
            raise UserError('A dynamic toolset needs an `id` to run in DBOS steps.')
        return dbos_dynamic_toolset_step_name(self.agent_name, toolset_id, operation)

    def visit_and_replace(
        self, visitor: Callable[[AbstractToolset[AgentDepsT]], AbstractToolset[AgentDepsT]]
    ) -> AbstractToolset[AgentDepsT]:
        # Already durable: offered to the visitor as a leaf, never wrapped twice.
        return visitor(self)

    async def for_run(self, ctx: RunContext[AgentDepsT]) -> AbstractToolset[AgentDepsT]:
        """In workflow code a fresh copy (the instructions listed in one run never reach another), unbuilt."""
        if not in_workflow_code():
            return await self.wrapped.for_run(ctx)
        # `replace` does not copy the listed instructions (not an init field): the copy starts without any.
        return DBOSDynamicToolset(self.wrapped, agent_name=self.agent_name, step_config=self.step_config)

    async def for_run_step(self, ctx: RunContext[AgentDepsT]) -> AbstractToolset[AgentDepsT]:
        # The dynamic toolset's own `for_run_step` would call its function here, in workflow code.
        if not in_workflow_code():  # pragma: no cover - outside workflow code `for_run` returned the toolset itself
            return await super().for_run_step(ctx)
        return self

    async def __aenter__(self) -> DBOSDynamicToolset[AgentDepsT]:
        # Nothing is built in workflow code, so there is nothing to enter: each step enters what it builds.
        return self

    async def __aexit__(self, *args: Any) -> bool | None:
        return None

    async def get_tools(self, ctx: RunContext[AgentDepsT]) -> dict[str, ToolsetTool[AgentDepsT]]:
        """List the tools (and keep the instructions) in the listing step, at every step of the run."""
        if not in_workflow_code():  # pragma: no cover - see `for_run`
            return await super().get_tools(ctx)
        toolset = self.wrapped

        async def get_tools_step() -> KernelListedDynamicTools:
            with step_run_context(ctx) as guarded:
                return await listed_dynamic_toolset(
                    toolset, guarded, tool_class=ListedDynamicTool, listing_class=ListedDynamicTools
                )

        listed = await DBOS.run_step_async(step_options(self._step_name('get_tools'), self.step_config), get_tools_step)
        self._listed_instructions = listed.instructions
        tools = listed_toolset_tools(self, listed.tools)
        for name, info in listed.tools.items():
            # Read as recorded (ours, or pydantic-ai 2.x's listing, which has the same field): never from the worker.
            if getattr(info, 'has_args_validator', False):
                tools[name] = with_args_validator_unit(tools[name], partial(self._validate_args, name))
        return tools

    async def _validate_args(self, name: str, ctx: RunContext[AgentDepsT], tool_args: dict[str, Any]) -> None:
        """Run the tool's `args_validator` in the `validate_args` step, which builds the toolset again."""
        toolset = self.wrapped

        async def validate_args_step() -> ToolOutcome:
            with step_run_context(ctx) as guarded:
                where = 'when it is built again in its validate_args step'
                async with built_dynamic_tool(toolset, guarded, name, where=where) as (_, real_tool):

                    async def validate() -> None:
                        # Only the verdict is recorded: the call step validates the arguments again.
                        await validate_tool_arguments(real_tool, tool_args, guarded)

                    return await capture_tool_outcome(validate())

        # Read whatever recorded it: ours' outcome, or pydantic-ai 2.x's own (a workflow its `DBOSDurability` started).
        unwrap_recorded_tool_result(
            await DBOS.run_step_async(
                step_options(self._step_name('validate_args'), self.step_config), validate_args_step
            )
        )

    async def get_instructions(
        self, ctx: RunContext[AgentDepsT]
    ) -> str | InstructionPart | Sequence[str | InstructionPart] | None:
        """The instructions the listing step of this run step recorded (the agent lists tools first)."""
        if not in_workflow_code():  # pragma: no cover - see `for_run`
            return await super().get_instructions(ctx)
        return self._listed_instructions

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[AgentDepsT], tool: ToolsetTool[AgentDepsT]
    ) -> Any:
        """Call the tool in a call step that builds the toolset again."""
        if not in_workflow_code():  # pragma: no cover - see `for_run`
            return await super().call_tool(name, tool_args, ctx, tool)
        toolset = self.wrapped
        # Only a tool listed with the `validate_args` step has a validator in workflow code: that step ran it.
        validated_in_its_step = tool.args_validator_func is not None

        async def call_tool_step() -> ToolOutcome:
            with step_run_context(ctx) as guarded:
                where = 'when it is built again in its call step'
                async with built_dynamic_tool(toolset, guarded, name, where=where) as (built, real_tool):
                    return await capture_tool_outcome(
                        _validate_and_call(
                            built, name, tool_args, guarded, real_tool, run_args_validator=not validated_in_its_step
                        )
                    )

        outcome = await DBOS.run_step_async(
            step_options(self._step_name('call_tool'), self.step_config), call_tool_step
        )
        return unwrap_tool_outcome(outcome)
