"""The crash suite's Temporal workflow (a module of its own: the sandbox re-imports it in the worker subprocesses)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from durable_temporal import PydanticAIWorkflow, TemporalAgent

from .crash_agent import CrashDeps, crash_agent

__all__ = ('CRASH_WORKFLOW_NAME', 'CrashWorkflow', 'temporal_crash_agent')

CRASH_WORKFLOW_NAME = 'crash_agent_run'

# A killed worker's activity is retried once its start-to-close timeout expires: keep it short so a crash run
# takes seconds (the model and tools take milliseconds).
temporal_crash_agent = TemporalAgent(
    crash_agent,
    activity_config={
        'start_to_close_timeout': timedelta(seconds=1.5),
        'retry_policy': RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=20),
    },
)


@workflow.defn(name=CRASH_WORKFLOW_NAME)
class CrashWorkflow(PydanticAIWorkflow):
    """Runs the crash agent once and returns its output."""

    __pydantic_ai_agents__ = (temporal_crash_agent,)

    @workflow.run
    async def run(self, prompt: str, deps: CrashDeps) -> str:
        result = await temporal_crash_agent.run(prompt, deps=deps)
        return result.output
