"""Temporal workflows running the benchmark agent wrapped by the reference `TemporalAgent`.

Only module-level definitions here: the sandbox re-imports this module for every workflow run.
"""

from __future__ import annotations

from pydantic_ai.durable_exec.temporal import PydanticAIWorkflow, TemporalAgent  # the reference: the yardstick
from temporalio import workflow

from ._workload import build_agent, drain_events

reference_agent = TemporalAgent(build_agent('bench_reference'))
reference_events_agent = TemporalAgent(build_agent('bench_reference_events'), event_stream_handler=drain_events)


@workflow.defn(name='BenchReferenceWorkflow')
class ReferenceWorkflow(PydanticAIWorkflow):
    """Runs the benchmark agent wrapped by the reference `TemporalAgent`."""

    __pydantic_ai_agents__ = [reference_agent]

    @workflow.run
    async def run(self, prompt: str) -> str:
        """Run the agent on `prompt` and return its output."""
        return (await reference_agent.run(prompt)).output


@workflow.defn(name='BenchReferenceEventsWorkflow')
class ReferenceEventsWorkflow(PydanticAIWorkflow):
    """Runs the benchmark agent, with an event stream handler, wrapped by the reference `TemporalAgent`."""

    __pydantic_ai_agents__ = [reference_events_agent]

    @workflow.run
    async def run(self, prompt: str) -> str:
        """Run the agent on `prompt` and return its output."""
        return (await reference_events_agent.run(prompt)).output
