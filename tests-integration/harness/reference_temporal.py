"""pydantic-ai's own `TemporalAgent` (the reference) running the migration workflow of `temporal_migration.py`, for
the migration tests only. Besides `reference_dbos.py` and `reference_prefect.py`, the only harness module allowed to
import `pydantic_ai.durable_exec`."""

from __future__ import annotations

import warnings
from typing import Any

from pydantic_ai.durable_exec.temporal import PydanticAIPlugin, TemporalAgent
from temporalio import workflow

from .crash_agent import CrashDeps, crash_agent
from .mcp_crash_agent import mcp_crash_agent
from .temporal_migration import MIGRATION_ACTIVITY_CONFIG, MIGRATION_WORKFLOW_NAME

__all__ = ('PydanticAIPlugin', 'ReferenceMigrationWorkflow')

with warnings.catch_warnings():
    # pydantic-ai 2.x deprecates its own `TemporalAgent`: what a user still running it records is what matters.
    warnings.simplefilter('ignore')
    AGENTS: dict[str, Any] = {
        'crash': TemporalAgent(crash_agent, activity_config=MIGRATION_ACTIVITY_CONFIG),
        'mcp': TemporalAgent(mcp_crash_agent, activity_config=MIGRATION_ACTIVITY_CONFIG),
    }


@workflow.defn(name=MIGRATION_WORKFLOW_NAME)
class ReferenceMigrationWorkflow:
    """The migration workflow on the reference (one workflow lists both agents: the reference's plugin fails on an
    agent listed by two)."""

    __pydantic_ai_agents__ = list(AGENTS.values())

    @workflow.run
    async def run(self, kind: str, prompt: str, deps: CrashDeps) -> str:
        result = await AGENTS[kind].run(prompt, deps=deps)
        return str(result.output)
