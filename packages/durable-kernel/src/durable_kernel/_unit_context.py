"""The run context user code sees inside a durable unit: `enqueue()` and `cancel()` refuse there.

A durable unit (activity, step, task) is recorded once; a recovered, resumed or retried run gets its recorded result
back without running it again. A message enqueued, or a cancellation asked for, from inside the unit would therefore
take effect on the first attempt only, and the runs would diverge. Both refuse with a `UserError` instead, for the
context the unit's code is given and for the ambient one (`get_current_run_context()`), on every engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any, TypeVar

from pydantic_ai.tools import RunContext

from ._compat import (
    get_current_run_context,
    guard_unit_run_context,
    refusing_external_events,
    refusing_message_queue,
    set_current_run_context,
)
from ._run_context import PartialRunContext

__all__ = (
    'enqueue_refusal',
    'external_events_refused',
    'guard_rebuilt_run_context',
    'guarded_unit_run_context',
    'unit_run_context',
)

_ContextT = TypeVar('_ContextT', bound='RunContext[Any] | None')
_RunContextT = TypeVar('_RunContextT', bound=RunContext[Any])


def enqueue_refusal(unit: str, container: str) -> str:
    """The message of `ctx.enqueue()` inside a durable unit.

    Args:
        unit: What the engine calls a unit (`'activity'`, `'step'`, `'task'`).
        container: What it calls the durable container (`'workflow'`, `'flow'`).
    """
    return (
        f'`ctx.enqueue()` cannot be used inside a durable {unit}: a recovered or retried {container} gets the '
        f"{unit}'s recorded result back without running it again, so the enqueued messages would be dropped. "
        f'Enqueue messages from {container} code (another tool, a capability hook) instead.'
    )


def external_events_refusal(container: str) -> str:
    """The message of `wait_for_external_event()` (pydantic-ai 2.78+) inside one of our durable runs.

    Args:
        container: Where the run is (`'a Temporal workflow'`, ...).
    """
    return (
        f'`wait_for_external_event()` (external events, such as a resume token handed to `ask`) is not supported '
        f'inside {container} by this package yet: the wait would happen in this process, so the engine would neither '
        'record it nor keep it across a restart, and a replay or retry would ask again. End the run with '
        '`DeferredToolRequests` output and start a new run with the results instead.'
    )


@contextmanager
def external_events_refused(container: str) -> Generator[None]:
    """Refuse pydantic-ai 2.78's `wait_for_external_event()` inside a durable run in `container` (no-op before 2.78).

    Args:
        container: Where the run is (`'a Temporal workflow'`, ...), for the message.
    """
    with refusing_external_events(external_events_refusal(container)):
        yield


def cancel_refusal(unit: str, container: str) -> str:
    """The message of `ctx.cancel()` inside a durable unit (pydantic-ai 2.x).

    Args:
        unit: What the engine calls a unit.
        container: What it calls the durable container.
    """
    return (
        f'`ctx.cancel()` cannot be used inside a durable {unit}: a recovered or retried {container} gets the '
        f"{unit}'s recorded result back without running it again, so the cancellation would silently not happen "
        f'again. Cancel the {container} (or the run from {container} code) instead.'
    )


def guarded_unit_run_context(ctx: _RunContextT, *, unit: str, container: str) -> _RunContextT:
    """A copy of `ctx` whose `enqueue()` and (pydantic-ai 2.x) `cancel()` raise a `UserError`.

    Args:
        ctx: The run context the unit's code would get.
        unit: What the engine calls a unit.
        container: What it calls the durable container.
    """
    return guard_unit_run_context(  # pyright: ignore[reportReturnType]
        ctx, enqueue_refusal=enqueue_refusal(unit, container), cancel_refusal=cancel_refusal(unit, container)
    )


@contextmanager
def unit_run_context(ctx: _ContextT, *, unit: str, container: str) -> Generator[_ContextT]:
    """Run a durable unit's code with `ctx` (or, if `None`, the ambient context) guarded, and as the ambient context.

    Args:
        ctx: The run context the unit's code gets, or `None` to guard only the ambient one (a model request).
        unit: What the engine calls a unit.
        container: What it calls the durable container.

    Yields:
        The guarded copy of `ctx` (`None` when `ctx` was `None`).
    """
    source: RunContext[Any] | None = ctx if ctx is not None else get_current_run_context()
    if source is None:
        yield ctx
        return
    guarded = guarded_unit_run_context(source, unit=unit, container=container)
    with set_current_run_context(guarded):
        yield guarded if ctx is not None else None  # pyright: ignore[reportReturnType]


def guard_rebuilt_run_context(ctx: RunContext[Any], *, unit: str, container: str) -> RunContext[Any]:
    """Make `enqueue()` refuse on a run context rebuilt on the far side of a durable boundary (a Temporal activity).

    Its message queue did not cross (there is no run to deliver to): without this, `enqueue()` would fail with the
    advice to send the field, which would not help. `cancel()` has no controller there to reach either.

    Args:
        ctx: The rebuilt context (a [`PartialRunContext`][durable_kernel.PartialRunContext]; others are returned as
            they are).
        unit: What the engine calls a unit.
        container: What it calls the durable container.

    Returns:
        `ctx`, changed in place.
    """
    if isinstance(ctx, PartialRunContext) and 'pending_messages' not in ctx.__dict__:
        ctx.__dict__['pending_messages'] = refusing_message_queue(enqueue_refusal(unit, container))
        # Declared on the instance too, so that `dataclasses.replace` (per-tool contexts) keeps the refusal.
        fields = dict(ctx.__dict__['__dataclass_fields__'])
        fields['pending_messages'] = {f.name: f for f in dataclasses.fields(RunContext)}['pending_messages']
        ctx.__dict__['__dataclass_fields__'] = fields
    return ctx
