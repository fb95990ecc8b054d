"""Where the current code runs: DBOS workflow code, a DBOS step, or neither."""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager
from typing import Any, TypeVar

from dbos import DBOS
from pydantic_ai.tools import RunContext

from durable_kernel import unit_run_context

__all__ = ('in_step', 'in_workflow_code', 'step_run_context')

_ContextT = TypeVar('_ContextT', bound='RunContext[Any] | None')


def in_workflow_code() -> bool:
    """Whether the caller is a DBOS workflow's own code (not a step): where durable work must become steps."""
    return DBOS.workflow_id is not None and DBOS.step_id is None


def in_step() -> bool:
    """Whether the caller runs inside a DBOS step."""
    return DBOS.step_id is not None


@contextmanager
def step_run_context(ctx: _ContextT) -> Generator[_ContextT]:
    """Run a step's user code with `ctx` (`None`: the ambient run context) refusing `enqueue()` and `cancel()`.

    A recovered workflow gets the step's recorded result back without running it again (see
    `durable_kernel.unit_run_context`).
    """
    with unit_run_context(ctx, unit='step', container='workflow') as guarded:
        yield guarded
