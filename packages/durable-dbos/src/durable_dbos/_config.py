"""Step configuration and the tool-call execution modes that DBOS supports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from dbos import StepOptions
from typing_extensions import TypedDict

from durable_kernel import merge_config

__all__ = ('DBOSParallelExecutionMode', 'StepConfig', 'step_options')


class StepConfig(TypedDict, total=False):
    """Retry options of one kind of DBOS step (model requests, tool calls or MCP I/O), merged over DBOS defaults.

    Keys left out use DBOS's own defaults (no retries).
    """

    retries_allowed: bool
    """Whether DBOS retries the step when it raises."""
    interval_seconds: float
    """Delay before the first retry."""
    max_attempts: int
    """How many attempts at most."""
    backoff_rate: float
    """Multiplier of the delay after each failed attempt."""


DBOSParallelExecutionMode = Literal['sequential', 'parallel_ordered_events']
"""The mode for executing tool calls in DBOS durable workflows.

A subset of pydantic-ai's `ParallelExecutionMode`: `'parallel'` is left out because it emits events in completion
order, which differs between an execution and its recovery.
"""


def step_options(name: str, *configs: Mapping[str, Any] | None) -> StepOptions:
    """Build the DBOS step options for one step: its name and the merged configs (later layers win).

    The callers' configs are never mutated.
    """
    merged = merge_config(*configs)
    merged['name'] = name
    return StepOptions(**merged)
