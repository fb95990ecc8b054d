"""A workflow run by a `TemporalAgent` (ours, or pydantic-ai 2.x's) replays after the agent moves to `TemporalDurability`.

pydantic-ai 2.x deprecates its wrapper for the capability and promises that such a workflow "replays correctly after
migrating when agent name, toolset IDs, and model registry keys are kept": the activity names are the same, so what
must match is what the workflow schedules, in order.
"""

from __future__ import annotations

import importlib
import json
import uuid
import warnings
from collections.abc import AsyncIterable
from pathlib import Path
from typing import Any

import pytest
from core_helpers import WORKFLOW_TIMEOUT, activity_names, skip_without_reference
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import AgentStreamEvent
from pydantic_ai.models.test import TestModel
from temporalio import workflow
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker

from durable_kernel import PYDANTIC_AI_2
from durable_temporal import AgentPlugin, PydanticAIPlugin, TemporalAgent, TemporalDurability
from durable_temporal._versioning import EVENT_BATCHES_PATCH, ORDERED_TOOL_EVENTS_PATCH
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio

NAME = 'temporal_agent_migration'


async def handle_events(ctx: RunContext[None], stream: AsyncIterable[AgentStreamEvent]) -> None:
    async for _ in stream:
        pass


async def migration_tool() -> str:
    return 'tool result'


async def second_tool() -> str:
    return 'second result'


# Two tool calls in one response, so the history holds the event handler's activities around tool activities (our
# wrapper sends the events in batches, and in call order: both behaviours are recorded as patch markers).
wrapper_agent = TemporalAgent(
    Agent(
        TestModel(custom_output_text='migrated'), name=NAME, deps_type=type(None), tools=[migration_tool, second_tool]
    ),
    event_stream_handler=handle_events,
)
capability_agent = Agent(
    TestModel(custom_output_text='migrated'),
    name=NAME,
    deps_type=type(None),
    tools=[migration_tool, second_tool],
    capabilities=[TemporalDurability(event_stream_handler=handle_events)],
)


@workflow.defn(name='TemporalAgentMigrationWorkflow')
class WrapperWorkflow:
    @workflow.run
    async def run(self, prompt: str) -> str:
        return (await wrapper_agent.run(prompt)).output


@workflow.defn(name='TemporalAgentMigrationWorkflow')
class CapabilityWorkflow:
    @workflow.run
    async def run(self, prompt: str) -> str:
        return (await capability_agent.run(prompt)).output


def _patches(history: WorkflowHistory) -> list[str]:
    """The patch ids of the history's markers."""
    return [
        json.loads(event.marker_recorded_event_attributes.details['patch-data'].payloads[0].data)['id']
        for event in history.events
        if event.HasField('marker_recorded_event_attributes')
        and event.marker_recorded_event_attributes.marker_name == 'core_patch'
    ]


async def test_a_history_of_our_wrapper_replays_on_our_capability(client: Client, task_queue: str) -> None:
    async with agent_worker(client, workflows=[WrapperWorkflow], agents=[wrapper_agent], task_queue=task_queue):
        handle = await client.start_workflow(
            WrapperWorkflow.run,
            'hello',
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        assert await handle.result() == 'migrated'
    history = await handle.fetch_history()
    # The wrapper's own behaviours are in the history (one batch for both calls' events).
    assert set(_patches(history)) >= {EVENT_BATCHES_PATCH, ORDERED_TOOL_EVENTS_PATCH}
    assert (await activity_names(client, handle)).count(f'agent__{NAME}__event_stream_handler') == 2
    await Replayer(workflows=[CapabilityWorkflow], plugins=[PydanticAIPlugin()]).replay_workflow(history)


async def test_the_capability_records_none_of_the_wrappers_behaviours(client: Client, task_queue: str) -> None:
    # A new execution schedules as pydantic-ai 2.x's capability (one activity per event, no marker), so that its
    # workflows stay movable to the reference.
    async with agent_worker(
        client, workflows=[CapabilityWorkflow], plugins=[AgentPlugin(capability_agent)], task_queue=task_queue
    ):
        handle = await client.start_workflow(
            CapabilityWorkflow.run,
            'hello',
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        assert await handle.result() == 'migrated'
    history = await handle.fetch_history()
    assert not set(_patches(history)) & {EVENT_BATCHES_PATCH, ORDERED_TOOL_EVENTS_PATCH}
    assert (await activity_names(client, handle)).count(f'agent__{NAME}__event_stream_handler') == 4
    await Replayer(workflows=[CapabilityWorkflow], plugins=[PydanticAIPlugin()]).replay_workflow(history)


HISTORY = Path(__file__).parent / 'histories' / 'reference_wrapper_2x' / 'migration.json'
"""A whole run of pydantic-ai 2.33's own `TemporalAgent` of the agent above (`histories/record_wrapper_2x.py`)."""


async def test_a_history_of_the_reference_2x_wrapper_replays_on_our_capability() -> None:
    history = WorkflowHistory.from_json('reference-wrapper-migration', HISTORY.read_text())
    # One handler activity per event around the two tool activities, in 2.x's order (no batch, no marker).
    assert _patches(history) == []
    await Replayer(workflows=[CapabilityWorkflow], plugins=[PydanticAIPlugin()]).replay_workflow(history)


async def test_a_history_of_the_reference_2x_wrapper_replays_on_our_wrapper() -> None:
    # Moving from 2.x's deprecated `TemporalAgent` to ours is an import change too: ours follows the history's order
    # (one handler activity per event, as recorded) where it holds no marker of ours' batching.
    history = WorkflowHistory.from_json('reference-wrapper-migration', HISTORY.read_text())
    await Replayer(workflows=[WrapperWorkflow], plugins=[PydanticAIPlugin()]).replay_workflow(history)


REFERENCE_AGENTS: dict[str, Any] = {}
"""The reference's wrapper, built by the 2.x test below (our packages cannot import the reference); run unsandboxed."""


@workflow.defn(name='TemporalAgentMigrationWorkflow')
class ReferenceWrapperWorkflow:
    @workflow.run
    async def run(self, prompt: str) -> str:
        return (await REFERENCE_AGENTS[NAME].run(prompt)).output


@pytest.mark.skipif(
    not PYDANTIC_AI_2, reason="the installed pydantic-ai's own wrapper is 1.107's (test_compat_reference)"
)
async def test_a_run_of_the_installed_reference_wrapper_replays_on_our_capability(
    client: Client, task_queue: str
) -> None:
    skip_without_reference()
    reference: Any = importlib.import_module('pydantic_ai.durable_exec.temporal')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the wrapper's deprecation
        agent = reference.TemporalAgent(
            Agent(
                TestModel(custom_output_text='migrated'),
                name=NAME,
                deps_type=type(None),
                tools=[migration_tool, second_tool],
            ),
            event_stream_handler=handle_events,
        )
    REFERENCE_AGENTS[NAME] = agent
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[ReferenceWrapperWorkflow],
        activities=agent.temporal_activities,
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await client.start_workflow(
            ReferenceWrapperWorkflow.run,
            'hello',
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        assert await handle.result() == 'migrated'
    history = await handle.fetch_history()
    await Replayer(workflows=[CapabilityWorkflow], plugins=[PydanticAIPlugin()]).replay_workflow(history)
