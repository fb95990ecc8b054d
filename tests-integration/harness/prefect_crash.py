"""The crash suite's Prefect flow: the agent's own flow (`crash_agent Run`) runs as its subflow.

A re-run of this flow run reattaches the subflow run of the killed attempt (Prefect looks it up by its parent task
run), so the subflow keeps its id and the model and tool tasks find their cached results.
"""

from __future__ import annotations

from prefect import flow

from durable_prefect import PrefectAgent

from .crash_agent import CrashDeps, crash_agent
from .stream_crash_agent import STREAM_CRASH_TOPIC, stream_crash_agent

__all__ = ('crash_flow', 'prefect_crash_agent', 'prefect_stream_crash_agent', 'stream_crash_flow')

prefect_crash_agent = PrefectAgent(crash_agent)


@flow(name='crash agent durable run', persist_result=True)
async def crash_flow(prompt: str, factor: int) -> str:
    """Run the crash agent in a subflow and return its output."""
    result = await prefect_crash_agent.run(prompt, deps=CrashDeps(factor=factor))
    return result.output


prefect_stream_crash_agent = PrefectAgent(stream_crash_agent, event_stream_topic=STREAM_CRASH_TOPIC)


@flow(name='stream crash agent durable run', persist_result=True)
async def stream_crash_flow(prompt: str, factor: int) -> str:
    """Run the stream crash agent in a subflow; its events go to this flow run's channel."""
    result = await prefect_stream_crash_agent.run(prompt, deps=CrashDeps(factor=factor))
    return result.output
