"""Counting tokens ahead of a request (`UsageLimits(count_tokens_before_request=True)`) inside a workflow.

Counting is a request to the provider, so inside a workflow it runs in its own activity,
`agent__{name}__model_count_tokens` (pydantic-ai 2.78's name for the same agent), before the request's activity, in
both forms. The activity's result is recorded: a replay does not count again. A history recorded before the count
became an activity (no `pydantic_ai:durable_count_tokens` marker) replays as recorded.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from core_helpers import WORKFLOW_TIMEOUT, activity_names
from pydantic_ai import Agent
from pydantic_ai.exceptions import UsageLimitExceeded
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.usage import RequestUsage, UsageLimits
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from durable_temporal import AgentPlugin, PydanticAIPlugin, TemporalAgent, TemporalDurability
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio

COUNTED: list[str] = []
"""Where each count ran: `'activity'` or `'workflow'`. Workflow code appends to the sandbox's copy of this module (the
workflow returns it); activities to the worker's (the test reads it)."""

TOKENS_PER_MESSAGE = 10


def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart(f'{len(messages)} messages')])


class CountingModel(FunctionModel):
    """A model whose provider counts a request's tokens: ten per message."""

    async def count_tokens(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> RequestUsage:
        COUNTED.append('activity' if activity.in_activity() else 'workflow' if workflow.in_workflow() else 'outside')
        return RequestUsage(input_tokens=TOKENS_PER_MESSAGE * len(messages))


wrapped_agent = Agent(CountingModel(reply), name='count_wrapper')
temporal_agent = TemporalAgent(wrapped_agent)
capability_agent = Agent(CountingModel(reply), name='count_capability', capabilities=[TemporalDurability()])

AGENTS: dict[str, Any] = {'wrapper': temporal_agent, 'capability': capability_agent}


@workflow.defn
class CountWorkflow:
    @workflow.run
    async def run(self, form: str, input_tokens_limit: int | None) -> tuple[str, list[str]]:
        limits = UsageLimits(count_tokens_before_request=True, input_tokens_limit=input_tokens_limit)
        try:
            output = (await AGENTS[form].run('hi', usage_limits=limits)).output
        except UsageLimitExceeded as error:
            output = f'limit: {error}'
        return output, list(COUNTED)


def _markers(history: WorkflowHistory) -> list[str]:
    """The patch ids of the markers a history recorded, in order."""
    return [
        json.loads(event.marker_recorded_event_attributes.details['patch-data'].payloads[0].data)['id']
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and event.marker_recorded_event_attributes.marker_name == 'core_patch'
    ]


def _plugins() -> list[Any]:
    return [AgentPlugin(temporal_agent), AgentPlugin(capability_agent)]


async def _run(client: Client, task_queue: str, form: str, limit: int | None = None) -> tuple[Any, ...]:
    COUNTED.clear()
    async with agent_worker(client, workflows=[CountWorkflow], plugins=_plugins(), task_queue=task_queue):
        handle = await client.start_workflow(
            CountWorkflow.run,
            args=[form, limit],
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        output, counted_in_workflow = await handle.result()
    return output, counted_in_workflow, list(COUNTED), await activity_names(client, handle), handle


@pytest.mark.parametrize('form', ['wrapper', 'capability'])
async def test_the_count_runs_in_its_own_activity_before_the_request(
    client: Client, task_queue: str, form: str
) -> None:
    output, in_workflow, in_activities, names, handle = await _run(client, task_queue, form)
    assert output == '1 messages'
    assert in_workflow == []
    assert in_activities == ['activity']
    prefix = f'agent__count_{form}'
    assert names == [f'{prefix}__model_count_tokens', f'{prefix}__model_request']

    # Replayed from its history (unsandboxed: workflow code appends to this module's list), the workflow takes the
    # recorded count: nothing is counted again.
    COUNTED.clear()
    history = await handle.fetch_history()
    assert 'pydantic_ai:durable_count_tokens' in _markers(history)
    replayer = Replayer(
        workflows=[CountWorkflow],
        plugins=[PydanticAIPlugin(), *_plugins()],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    await replayer.replay_workflow(history)
    assert COUNTED == []


@pytest.mark.parametrize('form', ['wrapper', 'capability'])
async def test_a_count_over_the_limit_stops_the_run_before_the_request(
    client: Client, task_queue: str, form: str
) -> None:
    output, in_workflow, in_activities, names, _ = await _run(client, task_queue, form, limit=5)
    assert output.startswith('limit: ')
    assert 'input_tokens_limit of 5' in output
    assert (in_workflow, in_activities) == ([], ['activity'])
    assert names == [f'agent__count_{form}__model_count_tokens']
