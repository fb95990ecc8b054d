"""The crash suite's Temporal workflow for the stream-out kill scenarios (a module of its own: it needs Workflow
Streams, temporalio >= 1.27.0, and is imported only where they exist)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from durable_temporal import AgentEventStream, PydanticAIWorkflow, TemporalAgent

from .crash_agent import CrashDeps
from .stream_crash_agent import STREAM_CRASH_TOPIC, stream_crash_agent

__all__ = ('STREAM_CRASH_WORKFLOW_NAME', 'StreamCrashWorkflow', 'temporal_stream_crash_agent')

STREAM_CRASH_WORKFLOW_NAME = 'stream_crash_agent_run'

# The model activity heartbeats while it streams: a killed worker's request is retried within the heartbeat timeout.
# The start-to-close timeout is generous, so that only the kill (not the load) makes an activity run again.
temporal_stream_crash_agent = TemporalAgent(
    stream_crash_agent,
    event_stream_topic=STREAM_CRASH_TOPIC,
    activity_config={
        'start_to_close_timeout': timedelta(seconds=30),
        'retry_policy': RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=20),
    },
    model_activity_config={'heartbeat_timeout': timedelta(seconds=2)},
    tool_activity_config={'<agent>': {'crunch': {'start_to_close_timeout': timedelta(seconds=3)}}},
)


@workflow.defn(name=STREAM_CRASH_WORKFLOW_NAME)
class StreamCrashWorkflow(PydanticAIWorkflow):
    """Runs the stream crash agent inside the Workflow Stream its consumers read."""

    __pydantic_ai_agents__ = (temporal_stream_crash_agent,)

    @workflow.init
    def __init__(self, prompt: str, deps: CrashDeps) -> None:
        self.events = AgentEventStream()

    @workflow.run
    async def run(self, prompt: str, deps: CrashDeps) -> str:
        async with self.events:
            result = await temporal_stream_crash_agent.run(prompt, deps=deps)
        return result.output
