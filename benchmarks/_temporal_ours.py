"""Temporal workflows running the benchmark agent wrapped by our `durable_temporal.TemporalAgent`.

Only module-level definitions here: the sandbox re-imports this module for every workflow run.
"""

from __future__ import annotations

from temporalio import workflow

from durable_temporal import PydanticAIWorkflow, TemporalAgent

from ._workload import build_agent, drain_events

ours_agent = TemporalAgent(build_agent('bench_ours'))
ours_events_agent = TemporalAgent(build_agent('bench_ours_events'), event_stream_handler=drain_events)


@workflow.defn(name='BenchOursWorkflow')
class OursWorkflow(PydanticAIWorkflow):
    """Runs the benchmark agent wrapped by our `TemporalAgent`."""

    __pydantic_ai_agents__ = [ours_agent]

    @workflow.run
    async def run(self, prompt: str) -> str:
        """Run the agent on `prompt` and return its output."""
        return (await ours_agent.run(prompt)).output


@workflow.defn(name='BenchOursEventsWorkflow')
class OursEventsWorkflow(PydanticAIWorkflow):
    """Runs the benchmark agent, with an event stream handler, wrapped by our `TemporalAgent`."""

    __pydantic_ai_agents__ = [ours_events_agent]

    @workflow.run
    async def run(self, prompt: str) -> str:
        """Run the agent on `prompt` and return its output."""
        return (await ours_events_agent.run(prompt)).output
