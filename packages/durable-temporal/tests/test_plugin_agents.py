"""Registering agents' activities: `PydanticAIWorkflow.__pydantic_ai_agents__`, `AgentPlugin`, and both at once."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from pydantic_ai import Agent
from pydantic_ai.exceptions import UserError
from pydantic_ai.models.test import TestModel
from pydantic_ai.usage import UsageLimits
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from durable_temporal import AgentPlugin, PydanticAIPlugin, PydanticAIWorkflow, TemporalAgent

pytestmark = pytest.mark.anyio


def shout(text: str) -> str:
    """Upper-case `text`."""
    return text.upper()


echo_agent = TemporalAgent(Agent(TestModel(), name='plugin_echo', tools=[shout]))
imposter_agent = TemporalAgent(Agent(TestModel(), name='plugin_echo'))


@workflow.defn
class ListingWorkflow(PydanticAIWorkflow):
    __pydantic_ai_agents__ = [echo_agent]

    @workflow.run
    async def run(self, prompt: str) -> str:
        return (await echo_agent.run(prompt)).output


@workflow.defn
class AlsoListingWorkflow(PydanticAIWorkflow):
    __pydantic_ai_agents__ = (echo_agent,)

    @workflow.run
    async def run(self, prompt: str) -> str:
        return (await echo_agent.run(prompt)).output


@workflow.defn
class UnlistedWorkflow:
    @workflow.run
    async def run(self, prompt: str, request_limit: int | None = None) -> str:
        limits = UsageLimits(request_limit=request_limit) if request_limit else None
        return (await echo_agent.run(prompt, usage_limits=limits)).output


@workflow.defn
class WronglyListingWorkflow:
    __pydantic_ai_agents__ = [Agent(TestModel(), name='not_wrapped')]

    @workflow.run
    async def run(self) -> None:
        return None


def _activity_names(worker: Worker) -> list[str]:
    activities: list[Callable[..., Any]] = list(worker.config(active_config=True).get('activities', []))  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
    return [activity._Definition.must_from_callable(fn).name or '' for fn in activities]  # pyright: ignore[reportPrivateUsage, reportUnknownMemberType]


ECHO_ACTIVITIES = [
    'agent__plugin_echo__event_stream_handler',
    'agent__plugin_echo__external_event_ask',
    'agent__plugin_echo__model_cancel_suspended_response',
    'agent__plugin_echo__model_compact_messages',
    'agent__plugin_echo__model_count_tokens',
    'agent__plugin_echo__model_request',
    'agent__plugin_echo__model_request_stream',
    'agent__plugin_echo__toolset__<agent>__call_tool',
]


async def _run(client: Client, worker: Worker, workflow_run: Any, *args: Any) -> Any:
    async with worker:
        return await client.execute_workflow(
            workflow_run,
            args=args,
            id=str(uuid.uuid4()),
            task_queue=worker.task_queue,
            execution_timeout=timedelta(seconds=30),
        )


async def test_pydantic_ai_workflow_registers_its_agents(client: Client, task_queue: str):
    worker = Worker(client, task_queue=task_queue, workflows=[ListingWorkflow])
    assert sorted(_activity_names(worker)) == ECHO_ACTIVITIES
    assert await _run(client, worker, ListingWorkflow.run, 'hi') == '{"shout":"A"}'


async def test_agent_plugin_registers_one_agent(client: Client, task_queue: str):
    # (A worker is registered with the server's client on creation: the probe uses its own task queue.)
    assert _activity_names(Worker(client, task_queue=f'{task_queue}-probe', workflows=[UnlistedWorkflow])) == []
    worker = Worker(client, task_queue=task_queue, workflows=[UnlistedWorkflow], plugins=[AgentPlugin(echo_agent)])
    assert sorted(_activity_names(worker)) == ECHO_ACTIVITIES
    assert await _run(client, worker, UnlistedWorkflow.run, 'hi') == '{"shout":"A"}'


async def test_an_agent_registered_several_times_is_registered_once(client: Client, task_queue: str):
    """Reference defect 9: plugin + workflow attribute (or two workflows) failed on duplicate activities."""
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[ListingWorkflow, AlsoListingWorkflow, UnlistedWorkflow],
        activities=echo_agent.temporal_activities,
        plugins=[AgentPlugin(echo_agent), AgentPlugin(echo_agent)],
    )
    assert sorted(_activity_names(worker)) == ECHO_ACTIVITIES
    async with worker:
        for run in (ListingWorkflow.run, AlsoListingWorkflow.run):
            result = await client.execute_workflow(run, 'hi', id=str(uuid.uuid4()), task_queue=task_queue)
            assert result == '{"shout":"A"}'


async def test_two_agents_sharing_a_name_are_refused(client: Client, task_queue: str):
    with pytest.raises(UserError, match="registered as 'agent__plugin_echo__event_stream_handler'.*unique `name=`"):
        Worker(client, task_queue=task_queue, workflows=[ListingWorkflow], plugins=[AgentPlugin(imposter_agent)])


async def test_a_plain_agent_in_pydantic_ai_agents_is_refused(client: Client, task_queue: str):
    with pytest.raises(
        UserError, match=r'WronglyListingWorkflow.__pydantic_ai_agents__ contains .*TemporalAgent\(agent\)'
    ):
        Worker(client, task_queue=task_queue, workflows=[WronglyListingWorkflow])


async def test_usage_limit_fails_the_workflow(client: Client, task_queue: str):
    """Reference defect 11: a run over its request limit failed the workflow task forever instead of the workflow."""
    worker = Worker(client, task_queue=task_queue, workflows=[UnlistedWorkflow], plugins=[AgentPlugin(echo_agent)])
    with pytest.raises(WorkflowFailureError) as failure:
        await _run(client, worker, UnlistedWorkflow.run, 'hi', 1)
    assert isinstance(failure.value.cause, ApplicationError)
    assert failure.value.cause.type == 'UsageLimitExceeded'
    assert 'request_limit of 1' in str(failure.value.cause)


async def test_plugin_on_both_client_and_worker_registers_agents_once(client: Client, task_queue: str):
    """Temporal warns that the plugin runs twice; it must still work (the reference failed on duplicate activities)."""
    with pytest.warns(UserWarning, match='same plugin type'):
        worker = Worker(client, task_queue=task_queue, workflows=[ListingWorkflow], plugins=[PydanticAIPlugin()])
    assert sorted(_activity_names(worker)) == ECHO_ACTIVITIES
    assert await _run(client, worker, ListingWorkflow.run, 'hi') == '{"shout":"A"}'
