"""Counting tokens ahead of a request (`UsageLimits(count_tokens_before_request=True)`) inside a workflow.

Counting is a request to the provider, so inside a workflow it runs in its own activity,
`agent__{name}__model_count_tokens` (pydantic-ai 2.78's name for the same agent), before the request's activity, in
both forms. The activity's result is recorded: a replay does not count again. A history recorded before the count
became an activity (no `pydantic_ai:durable_count_tokens` marker) replays as recorded.
"""

from __future__ import annotations

import importlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from core_helpers import WORKFLOW_TIMEOUT, activity_names
from pydantic_ai import Agent, RunContext
from pydantic_ai.exceptions import UsageLimitExceeded
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.usage import RequestUsage, UsageLimits
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker

from durable_kernel import PYDANTIC_AI_VERSION
from durable_temporal import (
    AgentHandover,
    AgentPlugin,
    ContinueAsNewAfter,
    PydanticAIPlugin,
    TemporalAgent,
    TemporalDurability,
    hand_over,
)
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


REFERENCE_AGENTS: dict[str, Any] = {}
"""pydantic-ai 2.78's own capability-form agent of the same name, built by the 2.x test (run unsandboxed)."""


@workflow.defn(name='CountWorkflow')
class ReferenceCountWorkflow:
    @workflow.run
    async def run(self, form: str, input_tokens_limit: int | None) -> tuple[str, list[str]]:
        limits = UsageLimits(count_tokens_before_request=True, input_tokens_limit=input_tokens_limit)
        return (await REFERENCE_AGENTS[form].run('hi', usage_limits=limits)).output, []


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


class CannotCount(FunctionModel):
    """A model whose provider cannot count tokens: pydantic-ai's own `NotImplementedError`."""


cannot_count_agent = TemporalAgent(Agent(CannotCount(reply), name='count_cannot'))


@workflow.defn
class CannotCountWorkflow:
    @workflow.run
    async def run(self) -> str:
        try:
            await cannot_count_agent.run('hi', usage_limits=UsageLimits(count_tokens_before_request=True))
        except NotImplementedError as error:
            return f'{type(error).__name__}: {error}'
        return 'counted'


async def test_a_model_that_cannot_count_fails_the_run_as_without_durability_and_is_not_retried(
    client: Client, task_queue: str
) -> None:
    async with agent_worker(
        client, workflows=[CannotCountWorkflow], agents=[cannot_count_agent], task_queue=task_queue
    ):
        handle = await client.start_workflow(
            CannotCountWorkflow.run, id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
        )
        output = await handle.result()
    assert output.startswith('NotImplementedError: Token counting ahead of the request is not supported by CannotCount')
    # Recorded as the activity's result, not raised there: one attempt, no retry of a count that cannot succeed.
    history = await handle.fetch_history()
    started = [
        event.activity_task_started_event_attributes.attempt
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    assert (await activity_names(client, handle), started) == (['agent__count_cannot__model_count_tokens'], [1])


# Not only 1.107: 2.33's own Temporal integration does not even import with the temporalio this cell resolves (>= 1.34).
@pytest.mark.skipif(
    PYDANTIC_AI_VERSION < (2, 78, 0), reason='pydantic-ai counts in workflow code before 2.78 (no count activity)'
)
async def test_histories_of_pydantic_ai_2_78_capability_and_ours_replay_on_each_other(
    client: Client, task_queue: str
) -> None:
    reference_module = importlib.import_module('pydantic_ai.durable_exec.temporal')
    if not hasattr(
        importlib.import_module('pydantic_ai.durable_exec.temporal._durability'), '_DURABLE_COUNT_TOKENS_PATCH'
    ):
        pytest.skip('the installed pydantic-ai counts in workflow code (its count became an activity in 2.78)')
    reference_agent = Agent(
        CountingModel(reply), name='count_capability', capabilities=[reference_module.TemporalDurability()]
    )
    REFERENCE_AGENTS['capability'] = reference_agent
    reference_activities = list(reference_module.TemporalDurability.from_agent(reference_agent).temporal_activities)

    COUNTED.clear()
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[ReferenceCountWorkflow],
        activities=reference_activities,
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await client.start_workflow(
            ReferenceCountWorkflow.run,
            args=['capability', None],
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        assert (await handle.result())[0] == '1 messages'
    assert COUNTED == ['activity']
    assert await activity_names(client, handle) == [
        'agent__count_capability__model_count_tokens',
        'agent__count_capability__model_request',
    ]
    reference_history = await handle.fetch_history()
    assert 'pydantic_ai:durable_count_tokens' in _markers(reference_history)

    # The reference's history on ours (its recorded count decoded as ours), and ours on the reference.
    COUNTED.clear()
    ours = Replayer(
        workflows=[CountWorkflow],
        plugins=[PydanticAIPlugin(), *_plugins()],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    await ours.replay_workflow(reference_history)
    *_, our_handle = await _run(client, f'{task_queue}-ours', 'capability')
    COUNTED.clear()
    reference_plugin = reference_module.PydanticAIPlugin()
    reference = Replayer(
        workflows=[ReferenceCountWorkflow], plugins=[reference_plugin], workflow_runner=UnsandboxedWorkflowRunner()
    )
    await reference.replay_workflow(await our_handle.fetch_history())
    assert COUNTED == []


# --- continue-as-new: a workflow continuing as new counts and requests in the same run --------------------------

HANDOVER_TURNS = 4


def turns(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    done = sum(isinstance(part, ToolReturnPart) for message in messages for part in message.parts)
    if done < HANDOVER_TURNS:
        return ModelResponse(parts=[ToolCallPart('step', {'turn': done}, f'call-{done}')])
    return ModelResponse(parts=[TextPart(f'done after {done} turns')])


def step(turn: int) -> str:
    """One turn of the conversation."""
    return f'turn {turn}'


@dataclass
class CountingConversation:
    handover: AgentHandover | None = None


def continue_counting(ctx: RunContext[Any]) -> Any:
    return hand_over(ctx, lambda handover: [CountingConversation(handover)])


handover_agent = TemporalAgent(
    Agent(CountingModel(turns), name='count_handover', tools=[step]),
    continue_as_new=continue_counting,
    continue_as_new_after=ContinueAsNewAfter(model_requests=2),
)
COUNTING_LIMITS = UsageLimits(count_tokens_before_request=True, request_limit=None)


@workflow.defn
class HandoverWorkflow:
    @workflow.run
    async def run(self, conversation: CountingConversation) -> str:
        if conversation.handover is None:
            return (await handover_agent.run('go', usage_limits=COUNTING_LIMITS)).output
        resumed = conversation.handover.resume()
        result = await handover_agent.run(
            message_history=resumed.messages, usage=resumed.usage, usage_limits=COUNTING_LIMITS
        )
        return result.output


async def test_a_workflow_continuing_as_new_counts_each_request_once(client: Client, task_queue: str) -> None:
    COUNTED.clear()
    workflow_id = str(uuid.uuid4())
    async with agent_worker(client, workflows=[HandoverWorkflow], agents=[handover_agent], task_queue=task_queue):
        handle = await client.start_workflow(
            HandoverWorkflow.run,
            CountingConversation(),
            id=workflow_id,
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        assert await handle.result() == f'done after {HANDOVER_TURNS} turns'
    # One count per request (the requests of the turns and the final one), none again after a hand-over.
    assert COUNTED == ['activity'] * (HANDOVER_TURNS + 1)
    names: list[str] = []
    async for execution in client.list_workflows(f'WorkflowId = "{workflow_id}"'):
        run = client.get_workflow_handle(workflow_id, run_id=execution.run_id)
        run_names = [name for name in await activity_names(client, run) if 'call_tool' not in name]
        # Each run counts right before each of its requests: the hand-over comes before a count, not between.
        assert run_names == ['agent__count_handover__model_count_tokens', 'agent__count_handover__model_request'] * (
            len(run_names) // 2
        )
        names.extend(run_names)
    assert len(names) == 2 * (HANDOVER_TURNS + 1)


# --- history size: a count is sent the new messages only, as a request is ----------------------------------------

SIZED: list[int] = []
"""How many messages each count saw in its activity (the conversation it rebuilt)."""


class SizedCountingModel(FunctionModel):
    """A counting model that records how many messages each count was given."""

    async def count_tokens(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> RequestUsage:
        SIZED.append(len(messages))
        return RequestUsage(input_tokens=TOKENS_PER_MESSAGE * len(messages))


def long_turns(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    # The prompt says how many turns: `turns: N`.
    first = messages[0].parts[-1]
    wanted = int(str(getattr(first, 'content', '0')).split(':')[1])
    done = sum(isinstance(part, ToolReturnPart) for message in messages for part in message.parts)
    if done < wanted:
        return ModelResponse(parts=[ToolCallPart('bulky', {'turn': done}, f'call-{done}')])
    return ModelResponse(parts=[TextPart(f'done after {done} turns')])


def bulky(turn: int) -> str:
    """A tool result large enough that a conversation sent again is visible in the history's size."""
    return f'turn {turn}: ' + 'x' * 2000


sized_agent = TemporalAgent(Agent(SizedCountingModel(long_turns), name='count_sized', tools=[bulky]))


@workflow.defn
class SizedCountWorkflow:
    @workflow.run
    async def run(self, turns: int) -> str:
        limits = UsageLimits(count_tokens_before_request=True, request_limit=None)
        return (await sized_agent.run(f'turns: {turns}', usage_limits=limits)).output


async def _count_input_bytes(client: Client, task_queue: str, turns: int) -> int:
    """Run `turns` turns; the bytes of the count activities' recorded inputs."""
    SIZED.clear()
    async with agent_worker(client, workflows=[SizedCountWorkflow], agents=[sized_agent], task_queue=task_queue):
        handle = await client.start_workflow(
            SizedCountWorkflow.run,
            turns,
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        assert await handle.result() == f'done after {turns} turns'
    # Each count still saw the whole conversation: the prompt, then a call and a result per turn so far.
    assert [1 + 2 * turn for turn in range(turns + 1)] == SIZED
    size = 0
    async for event in handle.fetch_history_events():
        attributes = event.activity_task_scheduled_event_attributes
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED and attributes.activity_type.name.endswith(
            '__model_count_tokens'
        ):
            size += attributes.input.ByteSize()
    return size


async def test_the_counts_of_a_long_run_record_its_history_about_linearly(client: Client, task_queue: str) -> None:
    # Sent whole, the counts of 6 turns record 1 + 3 + ... + 13 = 49 messages against 1 + 3 + 5 = 9 for 2 turns (about
    # x5 in bytes here, x7 asymptotically); as deltas about 2 new messages per count, 7 counts against 3 (about x2.6).
    two = await _count_input_bytes(client, task_queue, 2)
    six = await _count_input_bytes(client, f'{task_queue}-six', 6)
    assert six < 3.2 * two, (two, six)
