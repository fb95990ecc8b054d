"""The crash suite's Temporal workflow (a module of its own: the sandbox re-imports it in the worker subprocesses)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from durable_temporal import AgentEventStream, PydanticAIWorkflow, TemporalAgent

from .crash_agent import CrashDeps, crash_agent
from .stream_crash_agent import STREAM_CRASH_TOPIC, stream_crash_agent

__all__ = (
    'CRASH_WORKFLOW_NAME',
    'STREAM_CRASH_WORKFLOW_NAME',
    'CrashWorkflow',
    'StreamCrashWorkflow',
    'temporal_crash_agent',
    'temporal_stream_crash_agent',
)

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
