"""Temporal workflows of the live-events section: the streamed run with a topic (hosting an `AgentEventStream`) and
the same run without one.

Only module-level definitions here: the sandbox re-imports this module for every workflow run.
"""

from __future__ import annotations

from temporalio import workflow

from durable_temporal import AgentEventStream, PydanticAIWorkflow, TemporalAgent

from ._live_workload import LIVE_TOPIC, build_live_agent

live_agent = TemporalAgent(build_live_agent('bench_live'), event_stream_topic=LIVE_TOPIC)
quiet_agent = TemporalAgent(build_live_agent('bench_live_quiet'))


@workflow.defn(name='BenchLiveWorkflow')
class LiveWorkflow(PydanticAIWorkflow):
    """Runs the streamed agent with a topic, published to the Workflow Stream this workflow hosts."""

    __pydantic_ai_agents__ = [live_agent]

    @workflow.init
    def __init__(self, prompt: str) -> None:
        self.events = AgentEventStream()

    @workflow.run
    async def run(self, prompt: str) -> str:
        """Run the agent on `prompt` and return its output."""
        async with self.events:
            return (await live_agent.run(prompt)).output


@workflow.defn(name='BenchLiveQuietWorkflow')
class QuietWorkflow(PydanticAIWorkflow):
    """Runs the same agent without a topic (the baseline of the bytes a topic adds)."""

    __pydantic_ai_agents__ = [quiet_agent]

    @workflow.run
    async def run(self, prompt: str) -> str:
        """Run the agent on `prompt` and return its output."""
        return (await quiet_agent.run(prompt)).output
