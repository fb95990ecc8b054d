"""pydantic-ai's own `DBOSAgent` (the reference), for the migration tests only: runs started on it finish on ours, and
the reverse (see `test_upgrade.py`). With `reference_prefect.py` and `reference_temporal.py`, the only harness modules allowed to import
`pydantic_ai.durable_exec`."""

from __future__ import annotations

from typing import Any

from pydantic_ai import Agent

__all__ = ('reference_dbos_agent',)


def reference_dbos_agent(agent: Agent[Any, Any]) -> Any:
    """Wrap `agent` in the reference's `DBOSAgent` (before `DBOS.launch()`)."""
    from pydantic_ai.durable_exec.dbos import DBOSAgent

    return DBOSAgent(agent)
