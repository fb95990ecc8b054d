"""Live events (`event_stream_topic`): a run's events read from outside the workflow while it runs, on a real server.

Both forms: the capability (`TemporalDurability(event_stream_topic=...)`) and the wrapper
(`TemporalAgent(..., event_stream_topic=...)`), each with and without an `event_stream_handler`.
"""

from __future__ import annotations

import asyncio
import importlib
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import pytest
from core_helpers import WORKFLOW_TIMEOUT
from pydantic_ai import Agent, RunContext
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import (
    AgentStreamEvent,
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    PartDeltaEvent,
    TextPart,
    TextPartDelta,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.run import AgentRunResultEvent
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker

from durable_kernel import HAS_RESPONSE_ORIGIN
from durable_temporal import (
    AgentEventStream,
    AgentPlugin,
    DurableAgentRunEvents,
    PydanticAIPlugin,
    TemporalAgent,
    TemporalDurability,
    UnitRetryEvent,
    WorkflowStreamTopic,
    stream_agent_events,
)
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio

# temporalio < 1.27 (the lowest cell) has no Workflow Streams: there a topic is refused (tested in test_durability.py).
pytest.importorskip('temporalio.contrib.workflow_streams', reason='temporalio < 1.27.0 has no Workflow Streams')

TOPIC = WorkflowStreamTopic('agent-events', batch_interval=timedelta(milliseconds=100))

# What the model and the tools do, and what they record, in the worker (this process: activities run here).
GATE = asyncio.Event()
PRODUCED: dict[str, float] = {}
HANDLED: list[AgentStreamEvent] = []
MANY_DELTAS = 200


def _prompt(messages: list[ModelMessage]) -> str:
    first = messages[0]
    assert isinstance(first, ModelRequest)
    return str(first.parts[-1].content)


def _chunks(prompt: str) -> list[str]:
    return [f'w{i} ' for i in range(MANY_DELTAS if prompt.startswith('many') else 20)]


async def stream_model(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
    prompt = _prompt(messages)
    called = any(isinstance(p, ToolReturnPart) for m in messages if isinstance(m, ModelRequest) for p in m.parts)
    if not called and 'two tools' in prompt:
        yield {
            0: DeltaToolCall(name='shout', json_args='{"text": "a"}', tool_call_id='c1'),
            1: DeltaToolCall(name='shout', json_args='{"text": "b"}', tool_call_id='c2'),
        }
        return
    if not called and ('gate' in prompt or 'tool' in prompt):
        name = 'gate' if 'gate' in prompt else 'shout'
        yield {0: DeltaToolCall(name=name, json_args='{"text": ', tool_call_id='c1')}
        await asyncio.sleep(0.05)
        yield {0: DeltaToolCall(json_args='"hi"}')}
        return
    for index, chunk in enumerate(_chunks(prompt)):
        if 'fail-once' in prompt and index == 5 and activity.info().attempt == 1:
            raise RuntimeError('the model connection dropped')
        PRODUCED[chunk] = time.monotonic()
        yield chunk
        await asyncio.sleep(0.005 if prompt.startswith('many') else 0.02)


async def gate(text: str) -> str:
    """Wait until the test opens the gate."""
    await asyncio.wait_for(GATE.wait(), timeout=60)
    return f'opened for {text}'


def shout(text: str) -> str:
    """Upper-case `text`."""
    return text.upper()


async def record(ctx: RunContext[Any], events: AsyncIterable[AgentStreamEvent]) -> None:
    async for event in events:
        HANDLED.append(event)


def plain_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    # Outside a workflow, without a handler, the model is not streamed.
    return ModelResponse(parts=[TextPart(''.join(_chunks(_prompt(messages))))])


def _model() -> FunctionModel:
    return FunctionModel(plain_model, stream_function=stream_model)


cap_agent = Agent(
    _model(), name='live_cap', tools=[gate, shout], capabilities=[TemporalDurability(event_stream_topic=TOPIC)]
)
cap_handler_agent = Agent(
    _model(),
    name='live_cap_h',
    tools=[gate, shout],
    capabilities=[TemporalDurability(event_stream_topic=TOPIC, event_stream_handler=record)],
)
wrap_agent = TemporalAgent(Agent(_model(), name='live_wrap', tools=[gate, shout]), event_stream_topic=TOPIC)
wrap_handler_agent = TemporalAgent(
    Agent(_model(), name='live_wrap_h', tools=[gate, shout]), event_stream_topic=TOPIC, event_stream_handler=record
)
AGENTS: dict[str, Any] = {
    'cap': cap_agent,
    'cap_h': cap_handler_agent,
    'wrap': wrap_agent,
    'wrap_h': wrap_handler_agent,
}
FORMS = ['cap', 'wrap']


@dataclass
class LiveInput:
    agent: str
    prompt: str
    hold: bool = False
    """Keep the stream readable after the run until the `release` signal."""


@workflow.defn
class LiveWorkflow:
    @workflow.init
    def __init__(self, arg: LiveInput) -> None:
        self.events = AgentEventStream(drain_timeout=timedelta(seconds=20))
        self.released = False

    @workflow.signal
    def release(self) -> None:
        self.released = True

    @workflow.run
    async def run(self, arg: LiveInput) -> str:
        async with self.events:
            result = await AGENTS[arg.agent].run(arg.prompt)
            if arg.hold:
                await workflow.wait_condition(lambda: self.released)
        return result.output


@workflow.defn
class NoStreamWorkflow:
    @workflow.run
    async def run(self, arg: LiveInput) -> str:
        return (await AGENTS[arg.agent].run(arg.prompt)).output


def _worker(client: Client, task_queue: str) -> Any:
    return agent_worker(
        client,
        workflows=[LiveWorkflow, NoStreamWorkflow],
        plugins=[AgentPlugin(agent) for agent in AGENTS.values()],
        task_queue=task_queue,
    )


async def _start(client: Client, task_queue: str, arg: LiveInput, workflow_run: Any = LiveWorkflow.run) -> Any:
    return await client.start_workflow(
        workflow_run, arg, id=f'live-{uuid.uuid4()}', task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
    )


def _consumer(
    form: str, client: Client, handle: WorkflowHandle[Any, Any], from_offset: int = 0
) -> DurableAgentRunEvents[str]:
    """The form's own `stream_agent_events` method, which fills in the topic."""
    agent = AGENTS[form]
    if isinstance(agent, TemporalAgent):
        wrapper = cast('TemporalAgent[None, str]', agent)
        return wrapper.stream_agent_events(client, handle, from_offset=from_offset)
    return TemporalDurability.from_agent(agent).stream_agent_events(
        client, handle, output_type=str, from_offset=from_offset
    )


def _text(events: list[Any]) -> str:
    return ''.join(
        e.delta.content_delta for e in events if isinstance(e, PartDeltaEvent) and isinstance(e.delta, TextPartDelta)
    )


async def _read_all(events: DurableAgentRunEvents[Any]) -> list[tuple[int, Any]]:
    read: list[tuple[int, Any]] = []
    async with events:
        async for event in events:
            read.append((events.offset, event))
    return read


@pytest.mark.parametrize('form', FORMS)
async def test_events_arrive_while_the_run_executes(client: Client, task_queue: str, form: str):
    GATE.clear()
    PRODUCED.clear()
    async with _worker(client, task_queue):
        handle = await _start(client, task_queue, LiveInput(form, 'gate then text'))
        received: list[Any] = []
        latencies: list[float] = []
        async with _consumer(form, client, handle) as events:
            async for event in events:
                now = time.monotonic()
                received.append(event)
                if len(received) == 1:
                    # The run is held by the tool until now: this event reached us while the run was executing.
                    assert not GATE.is_set()
                    desc = await handle.describe()
                    assert desc.status is not None
                    assert desc.status.name == 'RUNNING'
                    GATE.set()
                if isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
                    produced = PRODUCED.get(event.delta.content_delta)
                    if produced is not None:
                        latencies.append(now - produced)
        assert await handle.result() == 'w0 ' + _text(received)
    assert isinstance(received[-1], AgentRunResultEvent)
    terminal = cast('AgentRunResultEvent[str]', received[-1])
    assert terminal.result.output == await handle.result()
    assert events.result is not None
    assert events.result.output == terminal.result.output
    kinds = [e.event_kind for e in received]
    assert kinds.index('function_tool_call') < kinds.index('function_tool_result') < kinds.index('part_delta', 3)
    assert latencies
    print(
        f'\n[{form}] model delta -> consumer latency over {len(latencies)} deltas: '
        f'median {statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms',
        file=sys.stderr,
    )


@pytest.mark.parametrize('form', FORMS)
async def test_a_consumer_resumes_from_its_offset(client: Client, task_queue: str, form: str):
    async with _worker(client, task_queue):
        handle = await _start(client, task_queue, LiveInput(form, 'tool then text', hold=True))
        everything = await _read_all(_consumer(form, client, handle))

        partial: list[tuple[int, Any]] = []
        first = _consumer(form, client, handle)
        async with first:
            async for event in first:
                partial.append((first.offset, event))
                if len(partial) == 7:
                    break
        rest = await _read_all(_consumer(form, client, handle, from_offset=first.offset + 1))
        await handle.signal(LiveWorkflow.release)
        await handle.result()

    assert [o for o, _ in partial + rest] == [o for o, _ in everything]
    assert [repr(e) for _, e in partial + rest] == [repr(e) for _, e in everything]
    assert isinstance(everything[-1][1], AgentRunResultEvent)
    assert len({o for o, _ in everything}) == len(everything)


async def _publish_signals(handle: WorkflowHandle[Any, Any]) -> int:
    history = await handle.fetch_history()
    return sum(
        1
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        and e.workflow_execution_signaled_event_attributes.signal_name == '__temporal_workflow_stream_publish'
    )


@pytest.mark.parametrize('form', FORMS)
async def test_a_long_model_stream_is_published_in_batches(client: Client, task_queue: str, form: str):
    async with _worker(client, task_queue):
        handle = await _start(client, task_queue, LiveInput(form, 'many deltas'))
        read = await _read_all(_consumer(form, client, handle))
        output = await handle.result()
    events = [e for _, e in read]
    deltas = [e for e in events if isinstance(e, PartDeltaEvent)]
    assert len(deltas) == MANY_DELTAS - 1  # the first chunk starts the part
    assert 'w0 ' + _text(events) == output == ''.join(_chunks('many'))
    writes = await _publish_signals(handle)
    print(f'\n[{form}] {MANY_DELTAS} deltas published in {writes} signals', file=sys.stderr)
    assert 1 <= writes <= MANY_DELTAS / 5


@pytest.mark.parametrize('form', FORMS)
async def test_the_handler_and_the_consumer_see_the_same_events(client: Client, task_queue: str, form: str):
    HANDLED.clear()
    async with _worker(client, task_queue):
        handle = await _start(client, task_queue, LiveInput(f'{form}_h', 'tool then text'))
        read = await _read_all(_consumer(f'{form}_h', client, handle))
        await handle.result()
    consumed = [e for _, e in read]
    assert isinstance(consumed[-1], AgentRunResultEvent)
    # Every event, in the same order: the model's from inside the activity, the tools' from workflow code.
    assert [repr(e) for e in consumed[:-1]] == [repr(e) for e in HANDLED]
    assert {'function_tool_call', 'function_tool_result', 'part_delta'} <= {e.event_kind for e in HANDLED}


@pytest.mark.parametrize('form', [*FORMS, 'cap_h', 'wrap_h'])
async def test_parallel_tool_calls_are_published_once_each(client: Client, task_queue: str, form: str):
    HANDLED.clear()
    async with _worker(client, task_queue):
        handle = await _start(client, task_queue, LiveInput(form, 'two tools then text'))
        read = await _read_all(_consumer(form, client, handle))
        await handle.result()
    events = [e for _, e in read]
    calls = sorted(e.part.tool_call_id for e in events if isinstance(e, FunctionToolCallEvent))
    results = sorted(e.tool_call_id for e in events if isinstance(e, FunctionToolResultEvent))
    assert calls == results == ['c1', 'c2']
    if form.endswith('_h'):
        assert [repr(e) for e in events[:-1]] == [repr(e) for e in HANDLED]


@pytest.mark.parametrize('form', FORMS)
async def test_a_retried_model_activity_is_announced(client: Client, task_queue: str, form: str):
    async with _worker(client, task_queue):
        handle = await _start(client, task_queue, LiveInput(form, 'fail-once text'))
        read = await _read_all(stream_agent_events(client, handle, TOPIC.name, output_type=str))
        output = await handle.result()
    events = [e for _, e in read]
    retries = [i for i, e in enumerate(events) if isinstance(e, UnitRetryEvent)]
    assert len(retries) == 1
    marker = events[retries[0]]
    assert marker == UnitRetryEvent(unit='model_request', attempt=2)
    # The first attempt's partial response (4 deltas after the start), then the full second attempt.
    assert 'w0 ' + _text(events[: retries[0]]) == 'w0 w1 w2 w3 w4 '
    assert 'w0 ' + _text(events[retries[0] :]) == output
    assert isinstance(events[-1], AgentRunResultEvent)

    if HAS_RESPONSE_ORIGIN:
        # pydantic-ai 2.78's `origin`: the repeated activity streams under its next execution attempt, which
        # supersedes the failed one's; everything before the marker is the first execution.
        before = [e.origin for e in events[: retries[0]] if getattr(e, 'origin', None) is not None]
        after = [e.origin for e in events[retries[0] + 1 :] if getattr(e, 'origin', None) is not None]
        assert before
        assert after
        assert {origin.execution_attempt for origin in before} == {1}
        assert {origin.execution_attempt for origin in after} == {2}
        assert after[0].supersedes(before[-1])


@pytest.mark.parametrize('form', FORMS)
async def test_a_run_with_a_topic_replays_from_its_history(client: Client, task_queue: str, form: str):
    async with _worker(client, task_queue):
        handle = await _start(client, task_queue, LiveInput(form, 'tool then text'))
        await _read_all(_consumer(form, client, handle))
        await handle.result()
    history = await handle.fetch_history()
    replayer = Replayer(workflows=[LiveWorkflow, NoStreamWorkflow], plugins=[PydanticAIPlugin()])
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None


@pytest.mark.parametrize('form', FORMS)
async def test_a_workflow_without_an_agent_event_stream_is_refused(client: Client, task_queue: str, form: str):
    async with _worker(client, task_queue):
        handle = await _start(client, task_queue, LiveInput(form, 'text'), NoStreamWorkflow.run)
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
    assert 'AgentEventStream()' in str(failure.value.cause)


def test_a_consumer_without_a_topic_is_refused(client: Client):
    handle = client.get_workflow_handle('any')
    plain = TemporalAgent(Agent(_model(), name='live_no_topic'))
    with pytest.raises(UserError, match='has no `event_stream_topic`'):
        plain.stream_agent_events(client, handle)
    capability = TemporalDurability.from_agent(
        Agent(_model(), name='live_no_topic_cap', capabilities=[TemporalDurability()])
    )
    with pytest.raises(UserError, match='has no `event_stream_topic`'):
        capability.stream_agent_events(client, handle)
    with pytest.raises(UserError, match='poll cooldown'):
        stream_agent_events(client, handle, TOPIC, poll_cooldown=timedelta(0))


def test_outside_a_workflow_the_topic_changes_nothing():
    assert cap_agent.run_sync('text').output == ''.join(_chunks('text'))
    assert wrap_agent.run_sync('text').output == ''.join(_chunks('text'))


def test_a_workflow_stream_needs_a_workflow():
    with pytest.raises(UserError, match='@workflow.init'):
        AgentEventStream()


def _reference_live_events() -> Any:
    """pydantic-ai's own `durable_exec.temporal`, when it has live events (2.68); else the test is skipped."""
    try:
        reference: Any = importlib.import_module('pydantic_ai.durable_exec.temporal')
    except Exception as error:  # an older 2.x's integration may not even import with this temporalio
        pytest.skip(f"pydantic-ai's own Temporal integration does not import here: {error!r:.200}")
    if not hasattr(reference, 'stream_agent_events'):
        pytest.skip("this pydantic-ai's Temporal integration has no `stream_agent_events`")
    return reference


async def test_pydantic_ai_2_68s_consumer_reads_our_run(client: Client, task_queue: str):
    reference = _reference_live_events()
    async with _worker(client, task_queue):
        handle = await _start(client, task_queue, LiveInput('cap', 'tool then text', hold=True))
        ours = await _read_all(_consumer('cap', client, handle))
        theirs: list[tuple[int, Any]] = []
        async with reference.stream_agent_events(client, handle, TOPIC.name, output_type=str) as events:
            async for event in events:
                theirs.append((events.offset, event))
        await handle.signal(LiveWorkflow.release)
        output = await handle.result()
    assert [(o, repr(e)) for o, e in theirs] == [(o, repr(e)) for o, e in ours]
    assert theirs[-1][1].result.output == output


REFERENCE_AGENTS: dict[str, Agent[Any, str]] = {}
"""pydantic-ai 2.68's capability agent, built by the test below (our package cannot import it); run unsandboxed."""


@workflow.defn
class ReferenceLiveWorkflow:
    @workflow.init
    def __init__(self, prompt: str) -> None:
        reference: Any = importlib.import_module('pydantic_ai.durable_exec.temporal')
        self.events = reference.AgentEventStream(drain_timeout=timedelta(seconds=20))

    @workflow.run
    async def run(self, prompt: str) -> str:
        async with self.events:
            return (await REFERENCE_AGENTS['live_ref'].run(prompt)).output


async def test_our_consumer_reads_a_run_of_pydantic_ai_2_68s_capability(client: Client, task_queue: str):
    reference = _reference_live_events()
    agent = Agent(
        _model(),
        name='live_ref',
        tools=[shout],
        capabilities=[reference.TemporalDurability(event_stream_topic=TOPIC.name)],
    )
    REFERENCE_AGENTS['live_ref'] = agent
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[ReferenceLiveWorkflow],
        activities=list(reference.TemporalDurability.from_agent(agent).temporal_activities),
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await client.start_workflow(
            ReferenceLiveWorkflow.run,
            'tool then text',
            id=f'live-ref-{uuid.uuid4()}',
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        read = await _read_all(stream_agent_events(client, handle, TOPIC, output_type=str))
        output = await handle.result()
    events = [e for _, e in read]
    assert output == ''.join(_chunks('text'))
    assert 'w0 ' + _text(events) == output
    assert {'function_tool_call', 'function_tool_result', 'part_delta'} <= {e.event_kind for e in events}
    assert isinstance(events[-1], AgentRunResultEvent)
    assert cast('AgentRunResultEvent[str]', events[-1]).result.output == output
