"""Parallel tool calls in a durable run: concurrent execution, events in call order.

pydantic-ai's default `'parallel'` mode reports a tool's result event as soon as that tool finishes, so the events of
one model response's tool calls follow the order the tools *finish* in, which differs from one execution to the next.
A durable run must report the same events in the same order every time it executes, so inside an engine's durable
unit the calls run in `'parallel_ordered_events'` mode (started together, events reported in call order once all
have finished) or, if the user asks for it, `'sequential'`.
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager
from typing import Literal

from pydantic_ai.exceptions import UserError
from pydantic_ai.tool_manager import ToolManager

__all__ = (
    'DEFAULT_PARALLEL_EXECUTION_MODE',
    'DurableParallelExecutionMode',
    'ordered_tool_call_events',
    'require_durable_parallel_execution_mode',
)

DurableParallelExecutionMode = Literal['sequential', 'parallel_ordered_events']
"""The tool-call execution modes that give the same events in the same order on every execution of a run."""

DEFAULT_PARALLEL_EXECUTION_MODE: DurableParallelExecutionMode = 'parallel_ordered_events'
"""Tool calls start together; their events come in call order once all of them have finished."""

_DURABLE_MODES: tuple[DurableParallelExecutionMode, ...] = ('sequential', 'parallel_ordered_events')


def require_durable_parallel_execution_mode(mode: str, *, engine: str) -> DurableParallelExecutionMode:
    """Check that `mode` keeps tool events in a stable order.

    Args:
        mode: The requested tool-call execution mode.
        engine: The engine's display name, for the error message.

    Returns:
        The mode, typed as a durable mode.

    Raises:
        UserError: For `'parallel'` (events in completion order) or an unknown mode.
    """
    for durable_mode in _DURABLE_MODES:
        if mode == durable_mode:
            return durable_mode
    raise UserError(
        f'`parallel_execution_mode={mode!r}` is not supported by {engine}: use '
        "'parallel_ordered_events' or 'sequential' (both give the same events in the same order on every execution)."
    )


@contextmanager
def ordered_tool_call_events(
    mode: DurableParallelExecutionMode = DEFAULT_PARALLEL_EXECUTION_MODE,
) -> Generator[None]:
    """Run the tool calls of agent runs started in the block in `mode` (default `'parallel_ordered_events'`).

    Tool calls are scheduled in the same order in both modes: `'parallel_ordered_events'` only holds the events back
    until every call of the model response has finished.

    Args:
        mode: A durable tool-call execution mode.

    Yields:
        Nothing; the mode applies to runs started inside the `with` block.
    """
    with ToolManager.parallel_execution_mode(mode):
        yield
