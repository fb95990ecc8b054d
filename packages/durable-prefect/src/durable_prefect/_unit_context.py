"""The run context of user code inside a Prefect task: `enqueue()` and `cancel()` refuse there.

A retried or resumed flow run gets a completed task's cached result back without running it again, so a message
enqueued (or a cancellation asked for) inside the task would happen on the first attempt only.
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager
from typing import Any, TypeVar

from pydantic_ai.tools import RunContext

from durable_kernel import unit_run_context

__all__ = ('task_run_context',)

_ContextT = TypeVar('_ContextT', bound='RunContext[Any] | None')


@contextmanager
def task_run_context(ctx: _ContextT) -> Generator[_ContextT]:
    """Run a task's user code with `ctx` (`None`: the ambient run context) refusing `enqueue()` and `cancel()`."""
    with unit_run_context(ctx, unit='task', container='flow') as guarded:
        yield guarded
