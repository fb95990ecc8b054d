"""The fail-over suite's Temporal workflow (a module of its own: the worker processes' sandbox imports it).

The activity timeouts decide how soon the killed worker's in-flight activities are retried on the survivor: long
enough that a model request or tool finishes on a loaded machine, short enough that the test takes seconds.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from durable_temporal import PydanticAIWorkflow, TemporalAgent

from .failover_agent import FailoverDeps, failover_agent

__all__ = ('ACTIVITY_TIMEOUT', 'FAILOVER_WORKFLOW_NAME', 'FailoverWorkflow', 'failover_runner')

FAILOVER_WORKFLOW_NAME = 'failover_agent_run'
ACTIVITY_TIMEOUT = timedelta(seconds=12)
"""Start-to-close timeout of every activity: a held call of the killed worker is retried once it expires."""

temporal_failover_agent = TemporalAgent(
    failover_agent,
    activity_config={
        'start_to_close_timeout': ACTIVITY_TIMEOUT,
        'retry_policy': RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=10),
    },
)


@workflow.defn(name=FAILOVER_WORKFLOW_NAME)
class FailoverWorkflow(PydanticAIWorkflow):
    """Runs the fail-over agent once and returns its output."""

    __pydantic_ai_agents__ = (temporal_failover_agent,)

    @workflow.run
    async def run(self, prompt: str, deps: FailoverDeps) -> str:
        result = await temporal_failover_agent.run(prompt, deps=deps)
        return result.output


def failover_runner() -> SandboxedWorkflowRunner:
    """The default sandbox with the test package passed through (no re-import of it per workflow task)."""
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules('harness'))
