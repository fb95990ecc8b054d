"""Capability operations (pydantic-ai 2.68+'s `@durable_operation`) inside a workflow, in both forms.

A method a capability declares durable runs, when called in workflow code, in its own activity,
`agent__{name}__capability__{id}__{operation}` (pydantic-ai 2.78's name for the same agent): its I/O is recorded and a
replay takes the recorded result. Outside a workflow, or inside another activity, it runs where it is called. A
history recorded by pydantic-ai 2.78's own `TemporalDurability` replays on ours, and ours on it. pydantic-ai 1.107 (and
2.33) has no such decorator: nothing to test there.
"""

from __future__ import annotations

import importlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from core_helpers import WORKFLOW_TIMEOUT, activity_names, scheduled_activities
from pydantic_ai import Agent, RunContext
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RunUsage
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker

from durable_kernel import HAS_DURABLE_OPERATIONS
from durable_temporal import AgentPlugin, PydanticAIPlugin, TemporalAgent, TemporalDurability
from durable_temporal.testing import agent_worker

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not HAS_DURABLE_OPERATIONS,
        reason='`pydantic_ai.capabilities.durable_operation` came with pydantic-ai 2.68: the installed one has none',
    ),
]


def _no_decorator(name: str) -> Any:
    # Where pydantic-ai has no `durable_operation` (1.107, 2.33) the module still imports; its tests are skipped.
    def unchanged(function: Any) -> Any:
        return function

    return unchanged


durable_operation: Any = (
    importlib.import_module('pydantic_ai.capabilities').durable_operation if HAS_DURABLE_OPERATIONS else _no_decorator
)

WHERE: list[str] = []
"""Where each operation ran: `'activity'`, `'workflow'` or `'outside'` (activities append to the worker's copy of this
module, workflow code to the sandbox's)."""

NOTES: list[Note] = []
"""The notes the run's `before_run` got back (workflow code's copy; the workflow returns it)."""


def _input_tokens(result: Any) -> int:
    # A property on pydantic-ai 2.x (calling it warns), a method on 1.107.
    usage = result.usage
    return (usage if isinstance(usage, RunUsage) else usage()).input_tokens


def _where() -> str:
    return 'activity' if activity.in_activity() else 'workflow' if workflow.in_workflow() else 'outside'


@dataclass
class Note:
    topic: str
    text: str
    where: str


class Notes(AbstractCapability[Any]):
    """A capability whose `fetch` does I/O (here: says where it ran), declared durable."""

    id = 'notes'

    @durable_operation('fetch')
    async def fetch(self, ctx: RunContext[Any], topic: str, *, loud: bool = False) -> Note:
        where = _where()
        WHERE.append(where)
        # Usage the operation adds (a model it would call) counts for the run, as without durability.
        ctx.usage.input_tokens += 7
        return Note(topic, topic.upper() if loud else topic, where)

    async def before_run(self, ctx: RunContext[Any]) -> None:
        NOTES.append(await self.fetch(ctx, 'weather', loud=True))


def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart('done')])


capability_agent = Agent(FunctionModel(reply), name='ops_capability', capabilities=[Notes(), TemporalDurability()])
temporal_agent = TemporalAgent(Agent(FunctionModel(reply), name='ops_wrapper', capabilities=[Notes()]))
AGENTS: dict[str, Any] = {'capability': capability_agent, 'wrapper': temporal_agent}


@workflow.defn
class OpsWorkflow:
    @workflow.run
    async def run(self, form: str) -> tuple[str, list[Note], int]:
        NOTES.clear()
        result = await AGENTS[form].run('hi')
        return result.output, list(NOTES), _input_tokens(result)


REFERENCE_AGENTS: dict[str, Any] = {}
"""pydantic-ai 2.78's own capability-form agent of the same name, built by the test (run unsandboxed)."""


@workflow.defn(name='OpsWorkflow')
class ReferenceOpsWorkflow:
    @workflow.run
    async def run(self, form: str) -> tuple[str, list[Note], int]:
        NOTES.clear()
        result = await REFERENCE_AGENTS[form].run('hi')
        return result.output, list(NOTES), _input_tokens(result)


def _markers(history: WorkflowHistory) -> list[str]:
    """The patch ids of the markers a history recorded, in order (`stable_default_run_id` left out)."""
    found = [
        json.loads(event.marker_recorded_event_attributes.details['patch-data'].payloads[0].data)['id']
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and event.marker_recorded_event_attributes.marker_name == 'core_patch'
    ]
    return [patch for patch in found if patch != 'pydantic_ai:stable_default_run_id']


def _plugins() -> list[Any]:
    return [AgentPlugin(capability_agent), AgentPlugin(temporal_agent)]


CAPABILITY_OPERATIONS_PATCH = 'durable_temporal.capability_operations'


def _switched_on(client: Client) -> Client:
    """`client` with `TemporalAgent`'s capability-operation activities switched on (a new marker: off by default)."""
    config = client.config()
    config['plugins'] = [PydanticAIPlugin(patches={CAPABILITY_OPERATIONS_PATCH: True})]
    return Client(**config)


async def _run(client: Client, task_queue: str, form: str, *, switched_on: bool = True) -> Any:
    WHERE.clear()
    if switched_on:
        client = _switched_on(client)
    async with agent_worker(client, workflows=[OpsWorkflow], plugins=_plugins(), task_queue=task_queue):
        handle = await client.start_workflow(
            OpsWorkflow.run, form, id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
        )
        await handle.result()
    return handle


async def _outside_usage(form: str) -> int:
    NOTES.clear()
    WHERE.clear()
    result = await AGENTS[form].run('hi')
    assert [note.where for note in NOTES] == WHERE == ['outside']
    return _input_tokens(result)


@pytest.mark.parametrize('form', ['capability', 'wrapper'])
async def test_an_operation_called_in_workflow_code_runs_in_its_own_activity(
    client: Client, task_queue: str, form: str
) -> None:
    handle = await _run(client, task_queue, form)
    output, notes, input_tokens = await handle.result()
    assert output == 'done'
    # The typed result crossed back (a `Note`, decoded by the method's annotation), from the activity.
    assert notes == [Note('weather', 'WEATHER', 'activity')]
    assert WHERE == ['activity']
    prefix = f'agent__ops_{form}'
    scheduled = await scheduled_activities(client, handle)
    assert [a.name for a in scheduled] == [f'{prefix}__capability__notes__fetch', f'{prefix}__model_request']
    assert scheduled[0].summary == 'capability: notes.fetch'
    # The usage the operation added inside its activity is the run's, as outside a workflow.
    assert input_tokens == await _outside_usage(form)

    # Replayed from its history (unsandboxed: workflow code would append to this module's list), the workflow takes
    # the recorded result: the operation does not run again.
    WHERE.clear()
    replayer = Replayer(
        workflows=[OpsWorkflow], plugins=[PydanticAIPlugin(), *_plugins()], workflow_runner=UnsandboxedWorkflowRunner()
    )
    history = await handle.fetch_history()
    await replayer.replay_workflow(history)
    assert WHERE == []
    # The wrapper's activity is behind its marker; the capability form asks none (as pydantic-ai 2.78's).
    assert _markers(history) == ([CAPABILITY_OPERATIONS_PATCH] if form == 'wrapper' else [])


async def test_with_the_marker_off_the_wrapper_runs_the_operation_in_workflow_code_as_before(
    client: Client, task_queue: str
) -> None:
    # Its default until every worker runs a release that has it: what `TemporalAgent` did before (and pydantic-ai's
    # own `TemporalAgent` does), so that a rolled-back worker replays the workflow.
    handle = await _run(client, task_queue, 'wrapper', switched_on=False)
    _, notes, _ = await handle.result()
    assert [note.where for note in notes] == ['workflow']
    assert WHERE == []
    assert await activity_names(client, handle) == ['agent__ops_wrapper__model_request']
    assert _markers(await handle.fetch_history()) == []


@pytest.mark.parametrize('form', ['capability', 'wrapper'])
async def test_outside_a_workflow_the_operation_runs_where_it_is_called(form: str) -> None:
    assert await _outside_usage(form) > 0


tool_notes = Notes()


async def look_up(ctx: RunContext[Any], topic: str) -> str:
    """Look a topic up (through the capability's durable operation)."""
    return (await tool_notes.fetch(ctx, topic)).where


def call_tool_once(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    if len(messages) == 1:
        return ModelResponse(parts=[ToolCallPart('look_up', {'topic': 'rain'}, 'call-1')])
    return ModelResponse(parts=[TextPart('done')])


tool_agent = Agent(
    FunctionModel(call_tool_once), name='ops_tool', tools=[look_up], capabilities=[tool_notes, TemporalDurability()]
)


@workflow.defn
class ToolOpsWorkflow:
    @workflow.run
    async def run(self) -> str:
        return (await tool_agent.run('hi')).output


async def test_inside_a_tools_activity_the_operation_runs_there(client: Client, task_queue: str) -> None:
    WHERE.clear()
    async with agent_worker(
        client, workflows=[ToolOpsWorkflow], plugins=[AgentPlugin(tool_agent)], task_queue=task_queue
    ):
        handle = await client.start_workflow(
            ToolOpsWorkflow.run, id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
        )
        assert await handle.result() == 'done'
    # `before_run`'s call in its own activity; the tool's call inside the tool's activity (its result is recorded
    # there), not in another one.
    assert WHERE == ['activity', 'activity']
    assert await activity_names(client, handle) == [
        'agent__ops_tool__capability__notes__fetch',
        'agent__ops_tool__model_request',
        'agent__ops_tool__toolset__<agent>__call_tool',
        'agent__ops_tool__model_request',
    ]


def test_the_rules_of_pydantic_ai_2_78_are_kept() -> None:
    class NoId(Notes):
        id = None

    agent = Agent(FunctionModel(reply), name='ops_no_id', capabilities=[NoId(), TemporalDurability()])
    with pytest.raises(UserError, match='needs an `id`'):
        _ = TemporalDurability.from_agent(agent).temporal_activities

    class Twice(Notes):
        id = 'twice'

        @durable_operation('fetch')
        async def again(self, ctx: RunContext[Any], topic: str) -> str:
            return topic

    agent = Agent(FunctionModel(reply), name='ops_twice', capabilities=[Twice(), TemporalDurability()])
    with pytest.raises(UserError, match="named 'fetch'"):
        _ = TemporalDurability.from_agent(agent).temporal_activities

    class Wrapping(AbstractCapability[Any]):
        id = 'wrapping'

        @durable_operation('run')
        async def wrap_run(self, ctx: RunContext[Any], *, handler: Any) -> Any:
            return await handler()

    with pytest.raises(UserError, match='cannot be a durable operation: it takes a handler'):
        TemporalAgent(Agent(FunctionModel(reply), name='ops_wrapping', capabilities=[Wrapping()]))


async def test_histories_of_pydantic_ai_2_78_capability_and_ours_replay_on_each_other(
    client: Client, task_queue: str
) -> None:
    reference_module = importlib.import_module('pydantic_ai.durable_exec.temporal')
    reference_agent = Agent(
        FunctionModel(reply), name='ops_capability', capabilities=[Notes(), reference_module.TemporalDurability()]
    )
    REFERENCE_AGENTS['capability'] = reference_agent
    reference_activities = list(reference_module.TemporalDurability.from_agent(reference_agent).temporal_activities)

    WHERE.clear()
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[ReferenceOpsWorkflow],
        activities=reference_activities,
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await client.start_workflow(
            ReferenceOpsWorkflow.run,
            'capability',
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        reference_output = await handle.result()
    assert WHERE == ['activity']
    # The same unit names as ours (the test above), in the same order.
    assert await activity_names(client, handle) == [
        'agent__ops_capability__capability__notes__fetch',
        'agent__ops_capability__model_request',
    ]
    reference_history = await handle.fetch_history()

    # The reference's history on ours: its recorded result decoded by ours, nothing runs again.
    WHERE.clear()
    ours = Replayer(
        workflows=[OpsWorkflow], plugins=[PydanticAIPlugin(), *_plugins()], workflow_runner=UnsandboxedWorkflowRunner()
    )
    await ours.replay_workflow(reference_history)
    assert WHERE == []

    # Ours on the reference.
    our_handle = await _run(client, f'{task_queue}-ours', 'capability')
    assert (await our_handle.result())[2] == reference_output[2]
    WHERE.clear()
    reference = Replayer(
        workflows=[ReferenceOpsWorkflow],
        plugins=[reference_module.PydanticAIPlugin()],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    await reference.replay_workflow(await our_handle.fetch_history())
    assert WHERE == []
