"""Cancelling an agent run from workflow code: `asyncio.wait_for` around `agent.run()`, and a cancelled workflow.

An agent activity cancelled from workflow code must end the way asyncio cancellation ends, whatever the activity's
`cancellation_type`: `asyncio.wait_for` raises `TimeoutError` (which the workflow can catch), and a cancelled workflow
ends *Cancelled*. The workflow task must never fail on the way (no livelock, no deadlock-detector retries).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from core_helpers import WORKFLOW_TIMEOUT
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import AgentStreamEvent, ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.exceptions import CancelledError
from temporalio.worker import Replayer
from temporalio.workflow import ActivityCancellationType, ActivityConfig

from durable_temporal import AgentPlugin, PydanticAIPlugin, TemporalAgent, TemporalDurability
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio

started_event: asyncio.Event | None = None
"""Set by the model activities when they start (they run in this, the worker's, process)."""


def _started() -> None:
    if started_event is not None:
        started_event.set()


async def _endless_stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
    _started()
    while True:
        await asyncio.sleep(0.01)
        yield ''


async def _endless_request(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    _started()
    await asyncio.sleep(60)
    return ModelResponse(parts=[TextPart('too late')])  # pragma: no cover


async def _drain(ctx: RunContext[Any], stream: AsyncIterable[AgentStreamEvent]) -> None:
    async for _ in stream:
        pass


def _model_config(cancellation_type: ActivityCancellationType) -> ActivityConfig:
    return ActivityConfig(
        start_to_close_timeout=timedelta(seconds=60),
        # Heartbeats carry the cancellation to the activity, which WAIT_CANCELLATION_COMPLETED waits for.
        heartbeat_timeout=timedelta(seconds=1),
        retry_policy=RetryPolicy(maximum_attempts=1),
        cancellation_type=cancellation_type,
    )


def _agent(name: str, *, stream: bool, cancellation_type: ActivityCancellationType) -> Agent[None, str]:
    model = FunctionModel(stream_function=_endless_stream) if stream else FunctionModel(_endless_request)
    return Agent(
        model,
        name=name,
        capabilities=[
            TemporalDurability(
                event_stream_handler=_drain if stream else None, model_activity_config=_model_config(cancellation_type)
            )
        ],
    )


AGENTS: dict[str, Agent[None, str]] = {
    'stream_wait': _agent(
        'cancel_stream_wait', stream=True, cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
    ),
    'stream_try': _agent('cancel_stream_try', stream=True, cancellation_type=ActivityCancellationType.TRY_CANCEL),
    'stream_abandon': _agent('cancel_stream_abandon', stream=True, cancellation_type=ActivityCancellationType.ABANDON),
    'request_wait': _agent(
        'cancel_request_wait', stream=False, cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
    ),
    'request_try': _agent('cancel_request_try', stream=False, cancellation_type=ActivityCancellationType.TRY_CANCEL),
}

wrapped_stream_agent = TemporalAgent(
    Agent(FunctionModel(stream_function=_endless_stream), name='cancel_wrapped_stream'),
    event_stream_handler=_drain,
    model_activity_config=_model_config(ActivityCancellationType.WAIT_CANCELLATION_COMPLETED),
)


@workflow.defn
class WaitForRunWorkflow:
    """Bounds an agent run with `asyncio.wait_for` and reports how it ended."""

    @workflow.run
    async def run(self, key: str) -> str:
        agent = wrapped_stream_agent if key == 'wrapped' else AGENTS[key]
        try:
            await asyncio.wait_for(agent.run('go'), timeout=1)
        except asyncio.TimeoutError:
            return 'timed out cleanly'
        return 'completed'  # pragma: no cover


@workflow.defn
class CancelledRunWorkflow:
    """Runs an agent that never finishes, until the workflow is cancelled."""

    @workflow.run
    async def run(self, key: str) -> str:
        return (await AGENTS[key].run('go')).output


def _plugins(*keys: str) -> list[AgentPlugin]:
    return [AgentPlugin(wrapped_stream_agent if key == 'wrapped' else AGENTS[key]) for key in keys]


async def _event_types(handle: WorkflowHandle[Any, Any]) -> list[int]:
    return [event.event_type for event in (await handle.fetch_history()).events]


async def _replays(handle: WorkflowHandle[Any, Any], workflows: list[type]) -> None:
    # The cancellation must be deterministic: the recorded history replays without a nondeterminism error.
    replayer = Replayer(workflows=workflows, plugins=[PydanticAIPlugin()])
    await replayer.replay_workflow(await handle.fetch_history())


@pytest.mark.parametrize(
    'key', ['stream_wait', 'stream_try', 'stream_abandon', 'request_wait', 'request_try', 'wrapped']
)
async def test_wait_for_around_a_run_raises_timeout_error(client: Client, task_queue: str, key: str) -> None:
    async with agent_worker(client, workflows=[WaitForRunWorkflow], plugins=_plugins(key), task_queue=task_queue):
        handle = await client.start_workflow(
            WaitForRunWorkflow.run,
            key,
            id=f'wait-for-{key}-{uuid.uuid4()}',
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        assert await handle.result() == 'timed out cleanly'
        events = await _event_types(handle)

    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in events
    if key != 'stream_abandon':  # ABANDON sends the server no cancellation at all
        assert EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED in events
    if key in ('stream_wait', 'request_wait', 'wrapped'):
        # The run ended only after the activity acknowledged its cancellation, as its config asks.
        assert EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED in events
    await _replays(handle, [WaitForRunWorkflow])


@pytest.mark.parametrize('key', ['stream_wait', 'request_try'])
async def test_cancelled_workflow_ends_cancelled(client: Client, task_queue: str, key: str) -> None:
    global started_event
    started_event = asyncio.Event()
    async with agent_worker(client, workflows=[CancelledRunWorkflow], plugins=_plugins(key), task_queue=task_queue):
        handle = await client.start_workflow(
            CancelledRunWorkflow.run,
            key,
            id=f'cancelled-{key}-{uuid.uuid4()}',
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        await asyncio.wait_for(started_event.wait(), timeout=60)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        events = await _event_types(handle)

    assert isinstance(failure.value.cause, CancelledError)
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED in events
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in events
    await _replays(handle, [CancelledRunWorkflow])
