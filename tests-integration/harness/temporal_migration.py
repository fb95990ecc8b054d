"""Temporal: a workflow started by pydantic-ai's own `TemporalAgent` (the reference), killed in a model request, a
tool call or an MCP tool call, finished by a worker running ours (`test_upgrade.py`).

The workflow (`MIGRATION_WORKFLOW_NAME`) is the same on both but for the import, as after a migration: it runs the
crash agent or the MCP crash agent (`kind`), wrapped by ours here and by the reference in `reference_temporal.py`,
under the same agent names, so the activities have the same names. A module of its own: the crash worker registers it
only when asked (`crash_worker temporal --migration ours|reference`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

from durable_temporal import PydanticAIWorkflow, TemporalAgent

from .crash_agent import CrashDeps, crash_agent
from .mcp_crash_agent import mcp_crash_agent

__all__ = ('MIGRATION_ACTIVITY_CONFIG', 'MIGRATION_WORKFLOW_NAME', 'MigrationWorkflow')

MIGRATION_WORKFLOW_NAME = 'crash_agent_migration'
# A killed worker's activity is retried once its start-to-close timeout expires: short, so that the next worker
# takes it over in seconds (the model and the tools take milliseconds; an MCP call starts its server: a few seconds).
MIGRATION_ACTIVITY_CONFIG: Any = {
    'start_to_close_timeout': timedelta(seconds=8),
    'retry_policy': RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=20),
}

AGENTS = {
    'crash': TemporalAgent(crash_agent, activity_config=MIGRATION_ACTIVITY_CONFIG),
    'mcp': TemporalAgent(mcp_crash_agent, activity_config=MIGRATION_ACTIVITY_CONFIG),
}


@workflow.defn(name=MIGRATION_WORKFLOW_NAME)
class MigrationWorkflow(PydanticAIWorkflow):
    """Runs the crash agent (`kind='crash'`) or the MCP crash agent (`kind='mcp'`) once; returns its output."""

    __pydantic_ai_agents__ = tuple(AGENTS.values())

    @workflow.run
    async def run(self, kind: str, prompt: str, deps: CrashDeps) -> str:
        result = await AGENTS[kind].run(prompt, deps=deps)
        return str(result.output)
