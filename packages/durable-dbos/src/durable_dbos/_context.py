"""Where the current code runs: DBOS workflow code, a DBOS step, or neither."""

from __future__ import annotations

from dbos import DBOS

__all__ = ('in_step', 'in_workflow_code')


def in_workflow_code() -> bool:
    """Whether the caller is a DBOS workflow's own code (not a step): where durable work must become steps."""
    return DBOS.workflow_id is not None and DBOS.step_id is None


def in_step() -> bool:
    """Whether the caller runs inside a DBOS step."""
    return DBOS.step_id is not None
