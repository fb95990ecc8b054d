"""Local activities (issue 17): the same units under the same names, recorded as markers instead of scheduled tasks.

Each run is compared with the same agent on regular activities: the same result, the same calls, the same unit names;
its history has no `ActivityTaskScheduled` event and one `MarkerRecorded` per unit, and replays. A worker killed
mid-run (SIGKILL) repeats no unit whose marker was recorded.
"""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import AsyncIterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from core_helpers import WORKFLOW_TIMEOUT, activity_names
from crash_agent import DEPS, HAS_WORKFLOW_STREAMS, LocalCrashWorkflow, local_crash_agent
from pydantic_ai import Agent, RunContext
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import AgentStreamEvent, ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer
from test_crash import _stop, _wait_for_line, _worker_process  # pyright: ignore[reportPrivateUsage]

from durable_temporal import AgentPlugin, LocalActivity, PydanticAIPlugin, TemporalAgent, TemporalDurability
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio

CALLS: list[str] = []
"""Every model request and tool call of the agents below, in the order they ran."""


def two_tools_twice(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    turn = sum(1 for message in messages if isinstance(message, ModelResponse))
    CALLS.append(f'model {turn}')
    if turn < 2:
        return ModelResponse(parts=[ToolCallPart('lookup', {'n': turn}), ToolCallPart('double', {'n': turn})])
    return ModelResponse(parts=[TextPart(f'done after {len(messages)} messages')])


def _build(name: str, **durability: Any) -> Agent[None, str]:
    """An agent of 7 units (3 model requests, 2 parallel tool calls twice), with the capability if `durability`."""
    capabilities = [TemporalDurability[None](**durability)] if durability else []
    agent = Agent(FunctionModel(two_tools_twice), name=name, capabilities=capabilities)

    @agent.tool_plain
    async def lookup(n: int) -> str:
        CALLS.append(f'lookup {n}')
        return f'found {n}'

    @agent.tool_plain
    def double(n: int) -> int:  # a sync tool: run in the activity's thread either way
        CALLS.append(f'double {n}')
        return 2 * n

    return agent


regular_agent = TemporalAgent(_build('la_regular'))
local_agent = TemporalAgent(_build('la_local'), local_activities=True)
per_tool_agent = TemporalAgent(
    _build('la_per_tool'), tool_activity_config={'<agent>': {'lookup': LocalActivity({'local_retry_threshold': None})}}
)
capability_agent = _build('la_capability', local_activities='tools')
capability_all_agent = _build('la_capability_all', local_activities=True)


@workflow.defn
class LocalActivitiesWorkflow:
    @workflow.run
    async def run(self, which: str) -> str:
        if which == 'regular':
            return (await regular_agent.run('go')).output
        if which == 'local':
            return (await local_agent.run('go')).output
        if which == 'per_tool':
            return (await per_tool_agent.run('go')).output
        if which == 'capability':
            return (await capability_agent.run('go')).output
        return (await capability_all_agent.run('go')).output


WORKFLOW_TASK_TIMEOUT = timedelta(seconds=2)
"""The crash test's workflow task timeout: the killed worker's task goes to the new worker this soon."""

EXPECTED_CALLS = ['model 0', 'lookup 0', 'double 0', 'model 1', 'lookup 1', 'double 1', 'model 2']
EXPECTED_OUTPUT = 'done after 5 messages'


def _marker_units(history: WorkflowHistory) -> list[str]:
    """The activity names of the local-activity markers of a history, in order."""
    names: list[str] = []
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
            continue
        attributes = event.marker_recorded_event_attributes
        if attributes.marker_name != 'core_local_activity':
            continue
        names.append(json.loads(attributes.details['data'].payloads[0].data)['activity_type'])
    return names


def _bytes(history: WorkflowHistory) -> int:
    return sum(event.ByteSize() for event in history.events)


def _scheduled(history: WorkflowHistory) -> list[str]:
    return [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


async def _run(client: Client, task_queue: str, which: str) -> tuple[str, list[str], WorkflowHistory]:
    CALLS.clear()
    handle = await client.start_workflow(
        LocalActivitiesWorkflow.run,
        which,
        id=f'local-{which}-{uuid.uuid4()}',
        task_queue=task_queue,
        execution_timeout=WORKFLOW_TIMEOUT,
    )
    output = await handle.result()
    return output, list(CALLS), await handle.fetch_history()


def _workers(client: Client, task_queue: str) -> Any:
    return agent_worker(
        client,
        workflows=[LocalActivitiesWorkflow],
        agents=[regular_agent, local_agent, per_tool_agent],
        plugins=[AgentPlugin(capability_agent), AgentPlugin(capability_all_agent)],
        task_queue=task_queue,
    )


async def _replay(history: WorkflowHistory) -> None:
    replayer = Replayer(workflows=[LocalActivitiesWorkflow], plugins=[PydanticAIPlugin()])
    await replayer.replay_workflow(history)


async def test_wrapper_with_local_activities_gives_the_same_run_as_markers_and_replays(
    env: WorkflowEnvironment, client: Client, task_queue: str
) -> None:
    async with _workers(client, task_queue):
        regular_output, regular_calls, regular_history = await _run(client, task_queue, 'regular')
        local_output, local_calls, local_history = await _run(client, task_queue, 'local')

    assert regular_output == local_output == EXPECTED_OUTPUT
    assert regular_calls == local_calls == EXPECTED_CALLS
    assert _marker_units(regular_history) == []
    assert _scheduled(local_history) == []
    # The same unit names, one marker per unit.
    assert _marker_units(local_history) == [
        name.replace('la_regular', 'la_local') for name in _scheduled(regular_history)
    ]
    assert _marker_units(local_history) == [
        'agent__la_local__model_request',
        'agent__la_local__toolset__<agent>__call_tool',
        'agent__la_local__toolset__<agent>__call_tool',
        'agent__la_local__model_request',
        'agent__la_local__toolset__<agent>__call_tool',
        'agent__la_local__toolset__<agent>__call_tool',
        'agent__la_local__model_request',
    ]
    # Fewer workflow tasks, fewer events, fewer bytes.
    assert len(local_history.events) < len(regular_history.events)
    assert _bytes(local_history) < _bytes(regular_history)

    CALLS.clear()
    await _replay(local_history)
    await _replay(regular_history)
    assert CALLS == []  # a replay runs no unit


async def test_capability_with_local_tools_or_all_units_and_replays(
    env: WorkflowEnvironment, client: Client, task_queue: str
) -> None:
    async with _workers(client, task_queue):
        tools_output, tools_calls, tools_history = await _run(client, task_queue, 'capability')
        all_output, all_calls, all_history = await _run(client, task_queue, 'capability_all')

    assert tools_output == all_output == EXPECTED_OUTPUT
    assert tools_calls == all_calls == EXPECTED_CALLS
    model = 'agent__la_capability__model_request'
    tool = 'agent__la_capability__toolset__<agent>__call_tool'
    # `'tools'`: the model requests stay regular activities.
    assert _scheduled(tools_history) == [model, model, model]
    assert _marker_units(tools_history) == [tool, tool, tool, tool]
    assert _scheduled(all_history) == []
    assert [name.replace('_all', '') for name in _marker_units(all_history)] == [
        model,
        tool,
        tool,
        model,
        tool,
        tool,
        model,
    ]
    await _replay(tools_history)
    await _replay(all_history)


async def test_one_tool_as_a_local_activity_through_tool_activity_config(
    env: WorkflowEnvironment, client: Client, task_queue: str
) -> None:
    async with _workers(client, task_queue):
        output, calls, history = await _run(client, task_queue, 'per_tool')

    assert output == EXPECTED_OUTPUT
    assert calls == EXPECTED_CALLS
    model = 'agent__la_per_tool__model_request'
    tool = 'agent__la_per_tool__toolset__<agent>__call_tool'
    # `lookup` is local, `double` and the model requests are regular (the same activity name as `lookup`'s).
    assert _scheduled(history) == [model, tool, model, tool, model]
    assert _marker_units(history) == [tool, tool]
    await _replay(history)


async def _markers(handle: WorkflowHandle[Any, Any]) -> list[str]:
    return _marker_units(await handle.fetch_history())


@pytest.mark.timeout(240)
async def test_a_killed_worker_repeats_no_local_activity_whose_marker_was_recorded(
    env: WorkflowEnvironment, client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL inside the 4th unit (`step_two`), once the markers of the first three are in the history.

    A local activity is recorded when its workflow task completes (or, while local activities run longer than the
    workflow task timeout allows, when the worker heartbeats the task): the short task timeout makes the worker record
    the first three markers while `step_two` blocks. The new worker runs `step_two` again (its attempt was lost with
    the worker: no marker) and the last model request; nothing recorded runs twice.
    """
    log = tmp_path / 'calls.log'
    monkeypatch.setenv('DURABLE_CRASH_LOG', str(log))
    process = _worker_process(client, task_queue, block=True)
    try:
        handle = await client.start_workflow(
            LocalCrashWorkflow.run,
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
            task_timeout=WORKFLOW_TASK_TIMEOUT,
        )
        await _wait_for_line(log, 'step_two start', process)
        with anyio.fail_after(60):
            while len(await _markers(handle)) < 3:
                assert process.poll() is None, 'the worker process exited early'
                await anyio.sleep(0.1)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        _stop(process)
    model = 'agent__crash_local__model_request'
    tool = 'agent__crash_local__toolset__<agent>__call_tool'
    assert await _markers(handle) == [model, tool, model]

    async with agent_worker(client, workflows=[LocalCrashWorkflow], agents=[local_crash_agent], task_queue=task_queue):
        with anyio.fail_after(120):
            assert await handle.result() == 'finished'

    assert log.read_text().splitlines() == [
        'model 0 of 1',
        'step_one',
        'model 1 of 3',
        'step_two start',  # lost with the killed worker: it had no marker
        'step_two start',
        # Sent inline to every local activity (their inputs are not in the history, so they cost no history bytes).
        f'step_two done with {len(DEPS.blob)} bytes of deps',
        # The whole conversation was sent to the local activity: nothing to rebuild from the history.
        'model 2 of 5',
    ]
    history = await handle.fetch_history()
    assert _scheduled(history) == []
    assert _marker_units(history) == [model, tool, model, tool, model]
    assert await activity_names(client, handle) == []
    await Replayer(workflows=[LocalCrashWorkflow], plugins=[PydanticAIPlugin()]).replay_workflow(history)


async def _ignore(ctx: RunContext[None], events: AsyncIterable[AgentStreamEvent]) -> None:
    async for _ in events:
        pass


def test_local_model_requests_are_refused_when_they_would_be_streamed() -> None:
    agent = Agent(FunctionModel(two_tools_twice), name='la_refused')
    for local in (True, 'model'):
        with pytest.raises(UserError, match='cannot run as local activities with an `event_stream_handler`'):
            TemporalAgent(agent, event_stream_handler=_ignore, local_activities=local)
        if HAS_WORKFLOW_STREAMS:  # else a topic is refused for the temporalio release first
            with pytest.raises(UserError, match='cannot run as local activities with an `event_stream_topic`'):
                TemporalDurability[None](event_stream_topic='events', local_activities=local)
    # Tools only: the model requests stay regular activities, which stream.
    TemporalAgent(agent, event_stream_handler=_ignore, local_activities='tools')
    TemporalDurability[None](event_stream_handler=_ignore, local_activities='tools')


def test_a_task_queue_cannot_apply_to_a_local_activity() -> None:
    agent = Agent(FunctionModel(two_tools_twice), name='la_task_queue')
    with pytest.raises(UserError, match="`task_queue='elsewhere'` cannot run as a local activity"):
        TemporalAgent(agent, activity_config={'task_queue': 'elsewhere'}, local_activities='model')
    with pytest.raises(UserError, match="`task_queue='elsewhere'` cannot run as a local activity"):
        TemporalAgent(
            agent,
            toolset_activity_config={'<agent>': {'task_queue': 'elsewhere'}},
            tool_activity_config={'<agent>': {'lookup': LocalActivity()}},
        )
    # The model requests stay regular: their task queue applies.
    TemporalAgent(agent, model_activity_config={'task_queue': 'elsewhere'}, local_activities='tools')


def test_an_unknown_local_activities_value_is_refused() -> None:
    agent = Agent(FunctionModel(two_tools_twice), name='la_unknown')
    with pytest.raises(UserError, match='`local_activities` must be'):
        TemporalAgent(agent, local_activities='all')  # pyright: ignore[reportArgumentType]
