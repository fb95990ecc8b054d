"""Awaiting an agent activity from workflow code so that cancelling the awaiting task is plain asyncio cancellation.

Workflow code may bound an agent run (`asyncio.wait_for(agent.run(...), timeout=...)`) or the workflow may be
cancelled. Either way the task awaiting a model request or tool call is cancelled, and two things went wrong when that
task awaited temporalio's activity handle directly:

- The handle is a task of its own, which answers a cancellation by asking the server to cancel the activity and then
  waiting for the activity's resolution, which arrives in a later workflow activation. pydantic-ai runs the agent graph
  in anyio task groups, whose cancel scopes cancel their tasks again on every turn of the event loop for as long as a
  task has not left the scope. Each cancel was handed on to the handle, which swallowed it and kept waiting, so the
  loop never went idle, the activation never ended, and the resolution could never arrive: Temporal's deadlock
  detector failed the workflow task, again on every retry.
- When the resolution did arrive, it was the activity's `ActivityError` (cause: cancelled), not a `CancelledError`:
  `asyncio.wait_for` passes such an error on instead of raising `TimeoutError`, so the workflow failed where it
  expected to catch a timeout.

`await_activity` takes the cancellation in the awaiting task itself (the handle is shielded from it), cancels the
activity once, waits for the resolution the activity's `cancellation_type` asks for with anyio's redelivery shielded,
and raises the `CancelledError` it received, as a cancelled asyncio task does. As before, the workflow sends one
request to cancel the activity (none for `ABANDON`).
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

import anyio
from temporalio import workflow

__all__ = ('await_activity',)

T = TypeVar('T')


async def await_activity(handle: workflow.ActivityHandle[T]) -> T:
    """Await an activity (regular or local) started from workflow code.

    Args:
        handle: What `workflow.start_activity()` or `workflow.start_local_activity()` returned.

    Returns:
        The activity's result.

    Raises:
        asyncio.CancelledError: The awaiting task was cancelled; the activity was cancelled too, and has resolved as
            its `cancellation_type` asks (for `WAIT_CANCELLATION_COMPLETED`: the activity acknowledged it).
    """
    try:
        # The shield keeps a cancellation of this task from reaching the handle (see the module docstring).
        return await asyncio.shield(handle)
    except asyncio.CancelledError:
        if not handle.done():
            handle.cancel()  # exactly one cancellation: temporalio turns it into one cancel command
            with anyio.CancelScope(shield=True):
                # `asyncio.wait` neither raises the activity's failure nor cancels the handle if this task is
                # cancelled again by something other than an anyio scope (which would cut the wait short: fine).
                await asyncio.wait([handle])
            if not handle.cancelled():
                # The activity's `ActivityError` (or its late result) is superseded by the cancellation; retrieving it
                # keeps asyncio from logging it as never retrieved.
                handle.exception()
        raise
