"""Whether a tool call of a running workflow is a DBOS step: decided by what that workflow recorded.

DBOS finds a step's recorded result by its position (the step id) and refuses to go on when the name recorded there
is not the step's (`DBOSUnexpectedStepError`, the workflow fails for good). A workflow recorded by
`pydantic_ai.durable_exec.dbos`, or by ours with `function_tool_steps=False` or a tool opted out, ran its tool calls
as workflow code: its next model request holds the position where ours would put a tool step. So the agent's current
setting cannot decide for a recovered workflow; its record does:

- a tool step recorded at the position of this call: the call is that step (DBOS returns the recorded result);
- another step recorded there (a model request, an MCP call): the recorded run made this call in workflow code, so
  it runs as workflow code, takes no position, and the rest of the run follows that layout;
- nothing recorded there: new work. It follows what the record showed (tool steps or not) and, when the record never
  reached a tool call (a new workflow), the agent's setting.

The record is read once per workflow execution, at its first tool call (DBOS does not tell a recovery from a first
execution); later decisions are lookups in memory, made right before DBOS draws the step's id, so parallel calls see
the positions in the order they take them.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass, field

from dbos import DBOS

from ._dbos_private import next_step_id

__all__ = ('tool_call_is_step', 'workflow_step_record')


@dataclass
class _Record:
    workflow_id: str
    names: dict[int, str] = field(default_factory=dict[int, str])
    last_id: int = 0
    tool_steps: bool | None = None
    """What the record says about tool calls: steps (`True`), workflow code (`False`), or nothing yet (`None`)."""
    loading: asyncio.Lock = field(default_factory=asyncio.Lock)
    loaded: bool = False


_current: contextvars.ContextVar[_Record | None] = contextvars.ContextVar('_durable_dbos_step_record', default=None)


@contextmanager
def workflow_step_record() -> Generator[None]:
    """Scope of one agent run in workflow code: its tool calls consult the workflow's record (read on first use)."""
    workflow_id = DBOS.workflow_id
    token = _current.set(_Record(workflow_id) if workflow_id is not None else None)
    try:
        yield
    finally:
        _current.reset(token)


def _read_step_names(workflow_id: str) -> dict[int, str]:
    steps = DBOS.list_workflow_steps(workflow_id, load_output=False)
    return {step['function_id']: step['function_name'] for step in steps}


async def _load(record: _Record) -> None:
    async with record.loading:
        if record.loaded:
            return
        # In an empty context: inside the workflow's context DBOS would record the listing as a step of its own.
        names = await asyncio.to_thread(contextvars.Context().run, _read_step_names, record.workflow_id)
        record.names = names
        record.last_id = max(names, default=0)
        if any(_is_tool_step(name) for name in names.values()):
            record.tool_steps = True
        record.loaded = True


def _is_tool_step(name: str) -> bool:
    # `{agent}__toolset__{id}.call_tool.{tool}`; MCP calls end in `.call_tool` (no tool name after it).
    return '.call_tool.' in name


async def tool_call_is_step(step_name: str, *, default: bool, opted_out: bool = False) -> bool:
    """Whether the tool call about to run as `step_name` is a step of the running workflow (see the module docs).

    `default` is the agent's `function_tool_steps` and `opted_out` whether the user made this tool workflow code
    (`tool_step_config_by_name={tool: None}`); both only decide new work. Call it right before
    `DBOS.run_step_async`, with no `await` in between: the answer is for the next step id.
    """
    record = _current.get()
    if record is None or record.workflow_id != DBOS.workflow_id:
        return default and not opted_out
    if not record.loaded:
        await _load(record)
    position = next_step_id()
    if position is None:  # pragma: no cover - the caller runs in workflow code
        return default and not opted_out
    recorded = record.names.get(position)
    if recorded is not None:
        if recorded == step_name or _is_tool_step(recorded):
            record.tool_steps = True
            return True
        if record.tool_steps is None:
            record.tool_steps = False
        return False
    if position <= record.last_id:
        # A hole before the last recorded step: a step started there but its result was not recorded, so it ran in
        # parallel with a later one: a tool step, unless the record already showed tool calls as workflow code
        # (then the hole is a parallel MCP call's).
        return record.tool_steps is not False
    if opted_out:
        return False
    return default if record.tool_steps is None else record.tool_steps
