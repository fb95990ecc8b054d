"""How an agent's toolsets become durable for one run, and the checks made before a workflow starts."""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.exceptions import UserError
from pydantic_ai.toolsets import AbstractToolset
from pydantic_ai.toolsets.external import ExternalToolset

from durable_kernel import DynamicToolset

from ._child_workflows import ChildWorkflow
from ._config import StepConfig
from ._dynamic_toolset import DBOSDynamicToolset
from ._mcp import DBOSMCPServer, is_mcp_toolset, refuse_unknown_mcp_toolset
from ._tool_steps import DBOSToolStepToolset, UnnamedToolsetTools

__all__ = ('DurableToolsetPlan', 'DurableToolsetsCapability', 'check_picklable_inputs')


@dataclass
class DurableToolsetPlan:
    """Which leaf toolsets become which DBOS wrappers."""

    agent_name: str
    mcp_step_config: StepConfig | None = None
    tool_step_config: StepConfig | None = None
    tool_step_config_by_name: Mapping[str, StepConfig | None] = field(default_factory=dict[str, 'StepConfig | None'])
    function_tool_steps: bool = True
    dynamic_toolset_steps: bool = False
    child_workflows: Mapping[str, ChildWorkflow] = field(default_factory=dict[str, ChildWorkflow])
    """The registered child workflows of function toolsets with a tool that selects one, by toolset id."""
    """Whether dynamic toolsets with an id are built, listed and called in steps (`DBOSDurability`, as 2.x does)."""

    def wrap_leaf(self, toolset: AbstractToolset[Any], unnamed_tools: UnnamedToolsetTools) -> AbstractToolset[Any]:
        """The durable replacement of one leaf toolset (a fresh MCP wrapper, hence a fresh per-run cache, each call).

        The wrappers of toolsets without an id share `unnamed_tools`, which refuses a tool name that two of them
        list (their steps would have the same name).
        """
        if isinstance(toolset, DBOSMCPServer):
            return toolset.for_new_run()
        if isinstance(toolset, (DBOSToolStepToolset, DBOSDynamicToolset)):
            return toolset
        if self.dynamic_toolset_steps and isinstance(toolset, DynamicToolset) and toolset.id:
            # Its function may do I/O (connect to an MCP server, read a database): it runs only inside steps. Without
            # an id the toolset keeps the layout below (its tools listed in workflow code), as ids name the steps.
            return DBOSDynamicToolset(toolset, agent_name=self.agent_name, step_config=self.mcp_step_config)
        if is_mcp_toolset(toolset):
            return DBOSMCPServer(toolset, step_name_prefix=self.agent_name, step_config=self.mcp_step_config)
        refuse_unknown_mcp_toolset(toolset)
        if isinstance(toolset, ExternalToolset):
            # External tools are never called by the agent: their results come back as deferred tool results.
            return toolset
        if not self.function_tool_steps and toolset.id is None:
            # Without tool steps an id is not needed, and no workflow can have recorded steps named without one.
            return toolset
        # Wrapped even with `function_tool_steps=False`: a recovered workflow that recorded tool steps replays them.
        return DBOSToolStepToolset(
            toolset,
            agent_name=self.agent_name,
            # Without an id (as the reference allows), steps are named after the agent and the tool alone.
            toolset_id=toolset.id or None,
            step_config=self.tool_step_config,
            step_config_by_name=self.tool_step_config_by_name,
            unnamed_tools=unnamed_tools,
            steps_by_default=self.function_tool_steps,
            child_workflow=self.child_workflows.get(toolset.id or ''),
        )

    def wrap(self, toolset: AbstractToolset[Any]) -> AbstractToolset[Any]:
        """The toolset tree with every leaf replaced by its durable wrapper."""
        unnamed_tools = UnnamedToolsetTools()
        return toolset.visit_and_replace(lambda leaf: self.wrap_leaf(leaf, unnamed_tools))

    def check(self, toolsets: Sequence[AbstractToolset[Any]] | None) -> None:
        """Raise the `UserError` a run would hit (for example a toolset without an id) before any workflow starts."""
        for toolset in toolsets or ():
            self.wrap(toolset)


@dataclass
class DurableToolsetsCapability(AbstractCapability[Any]):
    """Wraps the run's assembled toolset (agent, run-time, overridden and capability toolsets alike) for DBOS."""

    plan: DurableToolsetPlan

    @classmethod
    def get_serialization_name(cls) -> str | None:
        """Not constructible from an agent spec."""
        return None

    def get_wrapper_toolset(self, toolset: AbstractToolset[Any]) -> AbstractToolset[Any] | None:
        """Replace every leaf of the run's toolset by its durable wrapper."""
        return self.plan.wrap(toolset)


def check_picklable_inputs(inputs: Mapping[str, Any]) -> None:
    """Raise a `UserError` naming the first workflow input that DBOS could not checkpoint (it pickles inputs).

    Checked before the workflow starts, so the error reaches the caller of `run` instead of a later recovery.
    """
    for name, value in inputs.items():
        if value is None:
            continue
        try:
            pickle.dumps(value)
        except Exception as error:
            what = 'The `deps` object' if name == 'deps' else f'The `{name}` argument'
            advice = (
                'Pass deps that can be pickled (plain data, or an object defining `__reduce__`) and rebuild clients '
                'such as HTTP sessions or database connections inside your tools, or register a `DepsResolver` '
                '(`DBOSAgent(deps_resolver=...)`) so that the workflow records a reference and rebuilds the deps.'
                if name == 'deps'
                else 'Pass a picklable value (module-level functions and classes pickle by reference; lambdas, local '
                'functions and open connections do not), or configure it on the agent instead of per run.'
            )
            raise UserError(
                f'{what} ({type(value).__name__}) cannot be checkpointed by DBOS, which pickles workflow inputs so a '
                f'recovered workflow can run again: {error}. {advice}'
            ) from error
