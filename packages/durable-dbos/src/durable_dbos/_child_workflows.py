"""Function tools run as DBOS child workflows, selected by `metadata={'dbos': {'child_workflow': ChildWorkflowConfig()}}`.

pydantic-ai 2.68 lets an async function tool run as a child workflow of the agent's workflow: its body then is
workflow code, so the steps (and agent runs) it makes are recorded in the child, which recovers on its own, and the
parent records one child workflow in place of the call. The names are persisted compatibility data and are pydantic-ai
2.78's: the workflow `{agent}__function_toolset__{id}.call_tool__child_workflow` (one per function toolset with such a
tool), its id `{parent id}-{run_id}-{run_step}-{n}-{tool_call_id}` (`n` counts the executions of one tool call in one
run step), and its inputs `(tool name, arguments, tool definition, original name, run context, deps)`.

DBOS needs a workflow registered before `DBOS.launch()` for recovery to find it, so the child workflows are registered
when the agent is made durable (`DBOSAgent(...)`, or when `DBOSDurability` binds), for the toolsets with such a tool
then; DBOS hashes registered workflows into the application version, so agents without one register nothing new.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import nullcontext
from typing import Any, cast
from weakref import WeakKeyDictionary

from dbos import DBOS, SetWorkflowID, SetWorkflowTimeout
from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config
from pydantic_ai.agent import AbstractAgent
from pydantic_ai.exceptions import UserError
from pydantic_ai.tools import RunContext, ToolDefinition
from pydantic_ai.toolsets import AbstractToolset, FunctionToolset, ToolsetTool
from typing_extensions import TypedDict

from durable_kernel import (
    PartialRunContext,
    ToolOutcome,
    called_function_tool,
    capture_tool_outcome,
    dbos_child_workflow_name,
    rebuild_run_context,
    unit_run_context,
    unwrap_tool_outcome,
)

from ._dbos_private import workflow_context

__all__ = (
    'ChildWorkflow',
    'ChildWorkflowConfig',
    'call_in_child_workflow',
    'child_workflow_config',
    'register_child_workflows',
    'selects_child_workflow',
)


@with_config(ConfigDict(extra='forbid'))
class ChildWorkflowConfig(TypedDict, total=False):
    """How a tool call runs as a DBOS child workflow: `Tool(f, metadata={'dbos': {'child_workflow': ChildWorkflowConfig()}})`.

    The same keys as pydantic-ai 2.68's `ChildWorkflowConfig` of its DBOS integration.
    """

    workflow_timeout_sec: float
    """Given to DBOS's `SetWorkflowTimeout` when the child starts: when it expires, DBOS cancels the child workflow
    and the tool call raises `DBOSAwaitedWorkflowCancelledError`."""


_config_adapter: TypeAdapter[ChildWorkflowConfig] = TypeAdapter(ChildWorkflowConfig)

ChildWorkflow = Callable[..., Awaitable[ToolOutcome]]
"""A registered child workflow: called in the parent's workflow code, it runs one tool call."""

_executions: WeakKeyDictionary[Any, dict[tuple[str | None, int, str | None], int]] = WeakKeyDictionary()
"""How many times each tool call ran as a child in this workflow execution, so that each execution has its own id
(a capability may execute a call twice). Per DBOS workflow context: a recovery counts from zero, as the first run did."""


def selects_child_workflow(metadata: Mapping[str, Any] | None) -> bool:
    """Whether tool metadata selects a child workflow: `{'dbos': {'child_workflow': ...}}`."""
    setting = (metadata or {}).get('dbos')
    return isinstance(setting, Mapping) and 'child_workflow' in setting


def child_workflow_config(tool_def: ToolDefinition, *, is_async: bool) -> ChildWorkflowConfig | None:
    """The child workflow config a tool's metadata selects, checked; `None` when it selects none.

    Raises:
        UserError: `child_workflow` is not the only key under `'dbos'`, its config is not a `ChildWorkflowConfig`, or
            the tool is sync.
    """
    if not selects_child_workflow(tool_def.metadata):
        return None
    name = tool_def.name
    setting = cast(Mapping[str, Any], (tool_def.metadata or {})['dbos'])
    if set(setting) != {'child_workflow'}:
        raise UserError(
            f'Tool {name!r} has invalid DBOS metadata {dict(setting)!r}: `child_workflow` must be the only key under '
            "'dbos'."
        )
    try:
        config = _config_adapter.validate_python(setting['child_workflow'])
    except ValidationError as error:
        raise UserError(
            f"Invalid DBOS `ChildWorkflowConfig` in tool {name!r}'s metadata: {error}\nThe keys of "
            '`durable_dbos.ChildWorkflowConfig` are accepted.'
        ) from error
    if not is_async:
        raise UserError(
            f'Tool {name!r} selects a DBOS child workflow, but it is a sync function: only an async function tool can '
            'run as workflow code. Make the tool function `async`.'
        )
    return config


def register_child_workflows(
    agent_name: str, toolsets: Sequence[AbstractToolset[Any]], agent: AbstractAgent[Any, Any] | None
) -> dict[str, ChildWorkflow]:
    """Register the child workflow of each function toolset (among `toolsets`' leaves) with a tool that selects one.

    Returns:
        The registered workflows, by toolset id.

    Raises:
        UserError: Such a toolset has no id (its workflow is named after it), or a tool's config is invalid.
    """
    registered: dict[str, ChildWorkflow] = {}

    def visit(toolset: AbstractToolset[Any]) -> None:
        if not isinstance(toolset, FunctionToolset):
            return
        function_toolset = toolset
        selecting = [
            tool
            for tool in function_toolset.tools.values()
            if child_workflow_config(tool.tool_def, is_async=tool.function_schema.is_async) is not None
        ]
        if not selecting:
            return
        toolset_id = function_toolset.id
        if not toolset_id:
            raise UserError(
                f'Tool {selecting[0].name!r} selects a DBOS child workflow, but its {function_toolset.label} has no '
                '`id`, which names the workflow: pass a unique `id=` (e.g. `FunctionToolset(tools, id="research")`).'
            )
        if toolset_id in registered:
            return
        registered[toolset_id] = _register(agent_name, toolset_id, function_toolset, agent)

    for toolset in toolsets:
        toolset.apply(visit)
    return registered


def _register(
    agent_name: str, toolset_id: str, toolset: FunctionToolset[Any], agent: AbstractAgent[Any, Any] | None
) -> ChildWorkflow:
    async def call_tool_workflow(
        tool_name: str,
        tool_args: dict[str, Any],
        tool_def: ToolDefinition,
        original_name: str | None,
        serialized_run_context: dict[str, Any],
        deps: Any,
    ) -> ToolOutcome:
        return await _call_tool(
            toolset, agent, tool_name, tool_args, tool_def, original_name, serialized_run_context, deps
        )

    return DBOS.workflow(name=dbos_child_workflow_name(agent_name, toolset_id))(call_tool_workflow)


async def _call_tool(
    toolset: FunctionToolset[Any],
    agent: AbstractAgent[Any, Any] | None,
    tool_name: str,
    tool_args: dict[str, Any],
    tool_def: ToolDefinition,
    original_name: str | None,
    serialized_run_context: dict[str, Any],
    deps: Any,
) -> ToolOutcome:
    # The body of every child workflow, outside the registered function: DBOS hashes that function's source into the
    # application version, which then stays the same when this code changes.
    ctx = rebuild_run_context(PartialRunContext, serialized_run_context, deps=deps, agent=agent)
    tool = await called_function_tool(
        toolset, ctx, tool_name, tool_def=tool_def, original_name=original_name, where='in this process'
    )
    # `enqueue()` refuses: a recovered parent gets the child's recorded result, and a message would be lost.
    with unit_run_context(ctx, unit='child workflow', container='parent workflow') as guarded:
        return await capture_tool_outcome(toolset.call_tool(tool_name, tool_args, guarded, tool))


async def call_in_child_workflow(
    child_workflow: ChildWorkflow,
    name: str,
    tool_args: dict[str, Any],
    ctx: RunContext[Any],
    tool: ToolsetTool[Any],
    config: ChildWorkflowConfig,
) -> Any:
    """In the parent's workflow code: run the call as the child workflow and return the tool's result.

    DBOS records the child at the parent's next step id, taken when the child starts: nothing here waits before that,
    so parallel calls take their ids in the order they start, as steps do. A recovered parent gets the recorded child
    back (its result, once it completed: the tool does not run again).
    """
    parent_id = DBOS.workflow_id
    context = workflow_context()
    executions = _executions.setdefault(context, {})
    call_key = (ctx.run_id, ctx.run_step, ctx.tool_call_id)
    execution = executions.get(call_key, 0)
    executions[call_key] = execution + 1
    child_id = f'{parent_id}-{ctx.run_id}-{ctx.run_step}-{execution}-{ctx.tool_call_id}'
    timeout = config.get('workflow_timeout_sec')
    original_name: str | None = getattr(tool, 'original_name', None)  # pydantic-ai 2.x's `prepare` renames
    with SetWorkflowID(child_id), SetWorkflowTimeout(timeout) if timeout is not None else nullcontext():
        outcome = await child_workflow(
            name, tool_args, tool.tool_def, original_name, PartialRunContext.serialize_run_context(ctx), ctx.deps
        )
    return unwrap_tool_outcome(outcome)
