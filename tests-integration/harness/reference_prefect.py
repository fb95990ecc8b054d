"""pydantic-ai's own `PrefectAgent` (the reference) running the crash agents, for the migration tests only: flow runs
started on it are re-run on ours, and the reverse (see `harness/prefect_migration.py`). Besides `reference_dbos.py` and
`reference_temporal.py`, the only harness module allowed to import `pydantic_ai.durable_exec`."""

from __future__ import annotations

import warnings
from typing import Any

from pydantic_ai import Agent

__all__ = ('reference_prefect_agent',)


def reference_prefect_agent(agent: Agent[Any, Any]) -> Any:
    """`agent` wrapped in the installed line's reference `PrefectAgent`."""
    from pydantic_ai.durable_exec.prefect import PrefectAgent

    with warnings.catch_warnings():
        # pydantic-ai 2.x deprecates its own `PrefectAgent`: what a user still running it records is what matters.
        warnings.simplefilter('ignore')
        return PrefectAgent(agent)
