"""Function tools run as DBOS child workflows, selected by `metadata={'dbos': {'child_workflow': ChildWorkflowConfig()}}`.

pydantic-ai 2.68 lets an async function tool run as a child workflow of the agent's workflow: its body then is
workflow code, so the steps (and agent runs) it makes are recorded in the child, which recovers on its own, and the
parent records one child workflow in place of the call. The names are persisted compatibility data and are pydantic-ai
2.78's: the workflow `{agent}__function_toolset__{id}.call_tool__child_workflow` (one per function toolset with such a
tool), its id `{parent id}-{run_id}-{run_step}-{n}-{tool_call_id}` (`n` counts the executions of one tool call in one
run step), and its inputs `(tool name, arguments, tool definition, original name, run context, deps)`.

A recovered parent's calls take back their own recorded children by that id's end (`-{run_step}-{n}-{tool_call_id}`),
whatever order parallel calls reach their step positions in (`_take_own_position`).

DBOS needs a workflow registered before `DBOS.launch()` for recovery to find it, so the child workflows are registered
when the agent is made durable (`DBOSAgent(...)`, or when `DBOSDurability` binds), for the toolsets with such a tool
then; DBOS hashes registered workflows into the application version, so agents without one register nothing new.
"""

from __future__ import annotations

import asyncio
import contextvars
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
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

from ._dbos_private import next_step_id, workflow_context

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


@dataclass
class _Execution:
    """What one execution of a parent workflow remembers of its child workflow calls (a recovery starts afresh)."""

    parent_id: str
    counts: dict[tuple[str | None, int, str | None], int] = field(
        default_factory=dict[tuple[str | None, int, str | None], int]
    )
    """How many times each tool call `(run_id, run_step, tool_call_id)` ran as a child, so each execution of one call
    (a capability may execute it twice) has its own id."""
    recorded: dict[int, str] | None = None
    """The child workflow id recorded at each of the parent's step positions before this execution (read once)."""
    reading: asyncio.Lock = field(default_factory=asyncio.Lock)
    taken: set[str] = field(default_factory=set[str])
    """The recorded children a call of this execution took back."""
    moved: asyncio.Event = field(default_factory=asyncio.Event)
    """Set (and replaced) when a call takes a position: the calls waiting for theirs look again."""


_executions: WeakKeyDictionary[Any, _Execution] = WeakKeyDictionary()
"""Per DBOS workflow context, that is per execution of a parent workflow."""


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

    DBOS records the child at the parent's next step id, taken when the child starts. A recovered parent gets each
    call's own recorded child back (its result, once it completed: the tool does not run again), whatever order the
    parallel calls reach their positions in (see `_take_own_position`).
    """
    parent_id = DBOS.workflow_id
    context = workflow_context()
    assert parent_id is not None, 'called in the parent workflow code'
    assert context is not None
    state = _executions.get(context)
    if state is None or state.parent_id != parent_id:
        state = _executions[context] = _Execution(parent_id)
    call_key = (ctx.run_id, ctx.run_step, ctx.tool_call_id)
    execution = state.counts.get(call_key, 0)
    state.counts[call_key] = execution + 1
    call_suffix = f'-{ctx.run_step}-{execution}-{ctx.tool_call_id}'
    child_id = f'{parent_id}-{ctx.run_id}{call_suffix}'
    await _take_own_position(state, call_suffix, ctx.run_step)
    timeout = config.get('workflow_timeout_sec')
    original_name: str | None = getattr(tool, 'original_name', None)  # pydantic-ai 2.x's `prepare` renames
    # No `await` since the position was decided: the child takes it when called, before its first `await`.
    with SetWorkflowID(child_id), SetWorkflowTimeout(timeout) if timeout is not None else nullcontext():
        outcome = await child_workflow(
            name, tool_args, tool.tool_def, original_name, PartialRunContext.serialize_run_context(ctx), ctx.deps
        )
    return unwrap_tool_outcome(outcome)


async def _take_own_position(state: _Execution, call_suffix: str, run_step: int) -> None:
    """Wait, in a recovered parent, until the next step position is this call's recorded child's, or new.

    DBOS hands a child call whatever child is recorded at the position it takes, and parallel calls may take their
    positions in another order than when they were recorded (pydantic-ai 2.78 starts them out of call order, and any
    recording's order depends on scheduling). So a call whose next position holds another call's recorded child of
    the same run step waits for that call to take it back, and each call takes the position of its own child.

    A call knows its recorded child by the end of its id, `-{run_step}-{n}-{tool_call_id}`, the same on pydantic-ai
    2.78 and ours: the `run_id` in the middle is drawn again by a recovery of ours (ours has no deterministic default
    `run_id` on DBOS yet), so it cannot be compared. A position that holds
    no child, a taken one, or a child of no call of this run step (recorded by an older layout) keeps DBOS's match
    by position; a call's other recorded children at earlier positions were taken by then.
    """
    recorded = await _recorded_children(state)
    parent_prefix = f'{state.parent_id}-'
    sibling = re.compile(rf'.+-{run_step}-\d+-.+')
    while True:
        there = recorded.get(next_step_id() or 0)
        if (
            there is None
            or there in state.taken
            or not there.startswith(parent_prefix)
            or there.endswith(call_suffix)
            or sibling.fullmatch(there, len(parent_prefix)) is None
        ):
            break
        await state.moved.wait()
    if there is not None:
        state.taken.add(there)
    # The waiting calls run once this one awaits its child, after it took the position: wake them to look again.
    moved, state.moved = state.moved, asyncio.Event()
    moved.set()


async def _recorded_children(state: _Execution) -> dict[int, str]:
    """The child workflow id recorded at each step position of the parent before this execution first asked."""
    async with state.reading:
        if state.recorded is None:
            # In an empty context: inside the workflow's DBOS would record the listing as a step of its own.
            steps = await asyncio.to_thread(
                contextvars.Context().run, DBOS.list_workflow_steps, state.parent_id, load_output=False
            )
            state.recorded = {
                step['function_id']: step['child_workflow_id']
                for step in steps
                # Each child also has a `DBOS.getResult` step, taken with its start: only starts are matched.
                if step['child_workflow_id'] is not None and step['function_name'] != 'DBOS.getResult'
            }
        return state.recorded
