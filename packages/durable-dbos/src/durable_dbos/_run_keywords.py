"""The run keywords pydantic-ai 2.x added, as a DBOS workflow sees them: each one is carried or refused, never dropped.

`conversation` and `run_id` are plain data: they are recorded with the workflow's inputs (DBOS pickles them) and a
recovered workflow runs with them again. The others cannot be: a cancellation token is a live object of the calling
process, a run timeout is measured by that process's clock, and a workspace does its I/O outside any step. They are
refused with a `UserError` that names them and says what to use instead, before any workflow starts.
On pydantic-ai 1.107 these keywords do not exist, so they are always `None` and nothing is refused.
"""

from __future__ import annotations

from typing import Any

from durable_kernel import RunArguments

__all__ = ('refuse_unrecordable_keywords', 'without_refused_keywords')

_REFUSED: dict[str, str] = {
    'cancellation_token': (
        'a cancellation token is a live object of this process: DBOS cannot record it with the workflow inputs, and '
        'a workflow recovered in another process would run without it. Cancel the workflow instead: '
        '`DBOS.cancel_workflow(workflow_id)` (choose the ID with `SetWorkflowID`).'
    ),
    'timeout': (
        "a run timeout is measured by this process's clock, so a recovered workflow would start it again from zero. "
        'Give the workflow a deadline that DBOS records instead: `with SetWorkflowTimeout(seconds): agent.run(...)`.'
    ),
    'workspace': (
        "a workspace's file and command operations would run in workflow code, outside DBOS steps, and run again on "
        'recovery. Do that work in tools instead (each tool call is a step).'
    ),
}

# The 2.x keywords a workflow records with its inputs. `compact` (2.78: `True` or a dict) only asks the capabilities'
# compaction hooks to run before the first model request; the model work they do (`compact_messages`) is a step.
_CARRIED = frozenset({'conversation', 'run_id', 'compact'})


def refuse_unrecordable_keywords(arguments: RunArguments[Any], *, entry_point: str) -> None:
    """Raise a `UserError` for the first 2.x run keyword given that a DBOS workflow cannot carry.

    Args:
        arguments: The run's arguments.
        entry_point: How the run was started, for the message (for example `'run'`).

    Raises:
        UserError: `cancellation_token`, `timeout` or `workspace` was given.
    """
    arguments.refuse_run_keywords(carried=_CARRIED, refused=_REFUSED, where=f'`{entry_point}` of a `DBOSAgent`')


def without_refused_keywords(inputs: dict[str, Any]) -> dict[str, Any]:
    """The workflow inputs without the refused keywords, which are always `None` once refused.

    A workflow records only what it can use, and pydantic-ai 2.x's own DBOS workflow, which takes no
    `cancellation_token` or `timeout`, can then recover it (a rollback to the reference).
    """
    return {name: value for name, value in inputs.items() if not (name in _REFUSED and value is None)}
