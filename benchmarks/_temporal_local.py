"""Temporal workflows of the local-activities section: the benchmark agent on regular and on local activities.

Only module-level definitions here: the sandbox re-imports this module for every workflow run.
"""

from __future__ import annotations

from temporalio import workflow

from durable_temporal import PydanticAIWorkflow, TemporalAgent

from ._workload import build_agent

regular_agent = TemporalAgent(build_agent('bench_la_regular'))
local_agent = TemporalAgent(build_agent('bench_la_local'), local_activities=True)


@workflow.defn(name='BenchRegularActivitiesWorkflow')
class RegularActivitiesWorkflow(PydanticAIWorkflow):
    """Runs the benchmark agent with every unit a regular activity (the default)."""

    __pydantic_ai_agents__ = [regular_agent]

    @workflow.run
    async def run(self, prompt: str) -> str:
        """Run the agent on `prompt` and return its output."""
        return (await regular_agent.run(prompt)).output


@workflow.defn(name='BenchLocalActivitiesWorkflow')
class LocalActivitiesWorkflow(PydanticAIWorkflow):
    """Runs the same agent with every unit a local activity (`local_activities=True`)."""

    __pydantic_ai_agents__ = [local_agent]

    @workflow.run
    async def run(self, prompt: str) -> str:
        """Run the agent on `prompt` and return its output."""
        return (await local_agent.run(prompt)).output
