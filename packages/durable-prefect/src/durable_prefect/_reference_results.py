"""A flow run started by pydantic-ai 1.107's own `PrefectAgent` and re-run on this package reuses its recorded tool calls.

The reference keys a task's result by `PrefectAgentInputs + TASK_SOURCE + RUN_ID`: a hash of the call's inputs (minus
per-run fields), of the source of the reference's own task function, and of the id of its agent subflow run. On a
re-run, ours gets a subflow run of its own (Prefect finds a subflow by a hash of its flow function's code), so ours'
keys never meet the reference's. But each part of the reference's key can be computed without running the reference:
the inputs are the values ours' task has (the same tool, arguments, tool call id, run step and tool definition), the
task source is text in the installed pydantic-ai (read as a file, never imported), and the subflow run is the
reference's abandoned one, which `_foreign_runs` finds among the re-run flow run's subflows. A tool call of ours whose
reference key names a result in the task's result storage returns that result instead of calling the tool again.

So a result is reused exactly where the reference, re-run on itself with its subflow reattached (Prefect 3.9+), would
reuse it, under the same key and nothing looser; ours then records it under its own key, so a later crash does not
need the reference's record again. Where the key cannot match, the call runs again as before:

- model requests: 1.107's key holds the run context's `conversation_id`, new on every run (the reference repeats them
  on itself too);
- pydantic-ai 2.x installed: its task sources and run-context fields differ from 1.107's (and 2.x's reference keys its
  tasks otherwise), so a 1.107 record cannot be matched; only pydantic-ai 1.107's records, read with 1.107 installed,
  are;
- MCP toolsets other than 1.107's `MCPServer` classes: the reference ran them outside any task (nothing recorded).

The reference's keys leave out the run's deps and metadata (a defect of the reference that ours' own keys fix): a
reused result is one the same agent run (the same parent flow run's abandoned subflow) recorded for the same call.
"""

from __future__ import annotations

import ast
import contextvars
import dataclasses
import functools
import inspect
import logging
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect.context import TaskRunContext
from prefect.transactions import get_transaction
from prefect.utilities.hashing import hash_objects
from pydantic_ai.tools import RunContext
from pydantic_ai.toolsets import ToolsetTool

from durable_kernel import PYDANTIC_AI_2, ToolOutcome, ToolReturned, prefect_task_name

__all__ = ('reference_subflows', 'reference_tool_result')

_logger = logging.getLogger(__name__)

_reference_subflows: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    'durable_prefect_reference_subflows', default=()
)

# The reference's task functions that recorded tool calls, by the prefix of ours' task name for the same call (the
# kernel's name with an empty subject): (file under `pydantic_ai/durable_exec/prefect/`, class, task function).
# pydantic-ai 1.107's layout.
_REFERENCE_TASKS: dict[str, tuple[str, str, str]] = {
    prefect_task_name('call_tool', ''): ('_function_toolset.py', 'PrefectFunctionToolset', '_call_tool_task'),
    prefect_task_name('call_mcp_tool', ''): ('_mcp_server.py', 'PrefectMCPServer', '_call_tool_task'),
}

# Left out of the reference's keys at any depth: they change from run to run.
_PER_RUN_FIELDS = frozenset({'timestamp', 'run_id'})

# The run-context fields in 1.107's keys, in its order (the order is part of the hash when pickled).
_CONTEXT_FIELDS = (
    'retries',
    'tool_call_id',
    'tool_name',
    'tool_call_approved',
    'tool_call_metadata',
    'retry',
    'max_retries',
    'run_step',
)
_SORTED_CONTEXT_FIELDS = ('loaded_capability_ids', 'discovered_tool_names')


@contextmanager
def reference_subflows(subflow_ids: Sequence[Any]) -> Generator[None]:
    """Within the block, tool calls may reuse the results recorded by these abandoned reference subflow runs.

    Args:
        subflow_ids: The ids of the re-run flow run's unfinished agent subflows that other code started.
    """
    token = _reference_subflows.set(tuple(str(subflow_id) for subflow_id in subflow_ids))
    try:
        yield
    finally:
        _reference_subflows.reset(token)


@functools.cache
def _reference_task_source(file_name: str, class_name: str, function_name: str) -> str | None:
    """What `inspect.getsource` gives for the reference's task function, read from its file without importing it."""
    import pydantic_ai

    path = Path(pydantic_ai.__file__).parent / 'durable_exec' / 'prefect' / file_name
    try:
        text = path.read_text(encoding='utf-8')
    except OSError:
        return None
    lines = text.splitlines(keepends=True)
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for inner in ast.walk(node):
                if isinstance(inner, ast.AsyncFunctionDef | ast.FunctionDef) and inner.name == function_name:
                    # A decorated function's code starts at its first decorator, as `inspect.findsource` finds it.
                    first = min([inner.lineno, *(decorator.lineno for decorator in inner.decorator_list)])
                    return ''.join(inspect.getblock(lines[first - 1 :]))
    return None


def _without_per_run_fields(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: _without_per_run_fields(getattr(value, field.name))
            for field in dataclasses.fields(value)
            if field.name not in _PER_RUN_FIELDS
        }
    if isinstance(value, dict):
        items: dict[Any, Any] = value  # pyright: ignore[reportUnknownVariableType]
        return {key: _without_per_run_fields(item) for key, item in items.items() if key not in _PER_RUN_FIELDS}
    if isinstance(value, list):
        return [_without_per_run_fields(item) for item in value]  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, tuple):
        return tuple(_without_per_run_fields(item) for item in value)  # pyright: ignore[reportUnknownVariableType]
    return value


def _context_material(ctx: RunContext[Any]) -> dict[str, Any] | None:
    if any(not hasattr(ctx, name) for name in (*_CONTEXT_FIELDS, *_SORTED_CONTEXT_FIELDS)):
        return None
    material = {name: getattr(ctx, name) for name in _CONTEXT_FIELDS}
    material.update({name: sorted(getattr(ctx, name)) for name in _SORTED_CONTEXT_FIELDS})
    return material


def _inputs_key(name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]) -> str | None:
    """The inputs part of the reference's key of a tool call (its task's parameters, as its cache policy hashes them)."""
    from prefect.cache_policies import INPUTS

    context = _context_material(ctx)
    if context is None:
        return None
    tool_material = {
        field.name: getattr(tool, field.name) for field in dataclasses.fields(tool) if field.name != 'toolset'
    }
    inputs = {'tool_name': name, 'tool_args': tool_args, 'ctx': context, 'tool': tool_material}
    return INPUTS.compute_key(None, _without_per_run_fields(inputs), {})  # pyright: ignore[reportArgumentType]


async def reference_tool_result(
    name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
) -> ToolOutcome | None:
    """The result an abandoned reference subflow recorded for this tool call, if any, as ours' outcome.

    Called in ours' tool-call task, before the tool runs: `None` (run the tool) outside a re-run that left a reference
    subflow behind, and wherever the reference's key for the call names no stored result.

    Args:
        name: The tool's name.
        tool_args: The validated arguments.
        ctx: The run context of the call.
        tool: The tool.

    Returns:
        The recorded result, or `None`.
    """
    subflows = _reference_subflows.get()
    task_ctx = TaskRunContext.get()
    if not subflows or task_ctx is None or PYDANTIC_AI_2:
        return None
    reference_task = next(
        (where for prefix, where in _REFERENCE_TASKS.items() if task_ctx.task.name.startswith(prefix)), None
    )
    source = _reference_task_source(*reference_task) if reference_task is not None else None
    transaction = get_transaction()
    store = transaction.store if transaction is not None else None
    if source is None or store is None:
        return None
    try:
        inputs_key = _inputs_key(name, tool_args, ctx, tool)
        if inputs_key is None:
            return None
        source_key = hash_objects(source, raise_on_failure=True)
        for subflow_id in subflows:
            key = hash_objects(inputs_key, source_key, subflow_id, raise_on_failure=True)
            assert key is not None
            if await store.aexists(key):
                record = await store.aread(key)
                _logger.info(
                    'Tool call %r (%s) reuses the result recorded by the unfinished agent run %s of pydantic-ai',
                    name,
                    ctx.tool_call_id,
                    subflow_id,
                )
                return ToolReturned(result=record.result)
    except Exception as error:  # a lookup that cannot run must not fail the call: the tool runs, as before
        _logger.warning('Could not look up the recorded result of tool call %r: %r', name, error)
    return None
