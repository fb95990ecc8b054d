"""Live events (#14): a run publishes its events to a DBOS workflow stream; `stream_agent_events` reads them.

Both forms: `DBOSAgent(..., event_stream_topic=...)` (the `run` workflow) and `DBOSDurability(event_stream_topic=...)`
in the user's own workflow. Real DBOS on SQLite; the consumer reads while the run executes.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, cast

import pytest
from dbos import DBOS, DBOSClient, SetWorkflowID, WorkflowHandleAsync
from pydantic_ai import Agent, RunContext
from pydantic_ai.agent import AgentRunResult
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import (
    AgentStreamEvent,
    FinalResultEvent,
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    ModelMessage,
    ModelResponse,
    PartDeltaEvent,
    PartEndEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    ToolCallPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.run import AgentRunResultEvent

from durable_dbos import (
    DBOSAgent,
    DBOSDurability,
    DurableAgentRunEvents,
    EventStreamTopic,
    StepConfig,
    UnitRetryEvent,
    stream_agent_events,
)
from durable_dbos.testing import dbos_session, workflow_step_names_async
from durable_kernel import HAS_RESPONSE_ORIGIN

from . import live_events_app
from .conftest import both_backends

pytestmark = pytest.mark.anyio

Form = Literal['wrapper', 'capability']
FORMS: list[Form] = ['wrapper', 'capability']
TOPIC = 'agent-events'
POLL = timedelta(milliseconds=20)
TIMEOUT = 120
APP = Path(__file__).with_name('live_events_app.py')


@dataclass
class Script:
    """A streaming model: the first request streams text then calls `wait_here`, the second streams the answer."""

    deltas: int = 5
    delay: float = 0.0
    fail: bool = False
    """Whether the tool raises, failing the run."""
    flaky_stream: bool = False
    """Whether the last response's first attempt fails halfway (the model step is retried)."""
    attempts: int = 0
    produced: dict[str, float] = field(default_factory=dict[str, float])
    """When each text delta was produced (monotonic), by its content."""

    def model(self) -> FunctionModel:
        async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
            first = len(messages) == 1
            prefix = 'a' if first else 'b'
            if not first:
                self.attempts += 1
            for index in range(self.deltas):
                if self.delay:
                    await asyncio.sleep(self.delay)
                content = f'{prefix}{index} '
                self.produced[content] = time.monotonic()
                yield content
                if self.flaky_stream and not first and self.attempts == 1 and index == self.deltas // 2:
                    raise ConnectionError('the stream broke')
            if first:
                yield {1: DeltaToolCall(name='wait_here', json_args='{}', tool_call_id='call-1')}

        def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            # An agent without a topic or handler does not stream.
            if len(messages) == 1:
                return ModelResponse(parts=[ToolCallPart('wait_here', {}, tool_call_id='call-1')])
            return ModelResponse(parts=[TextPart('done')])

        return FunctionModel(answer, stream_function=stream)


@dataclass
class Run:
    workflow_id: str
    task: asyncio.Task[Any]
    agent: Any


def build(
    form: Form,
    name: str,
    script: Script,
    *,
    topic: str | EventStreamTopic | None = TOPIC,
    gate: threading.Event | None = None,
    handler: Callable[[RunContext[None], Any], Awaitable[None]] | None = None,
    model_step_config: StepConfig | None = None,
) -> tuple[Any, Callable[[str], Awaitable[Any]]]:
    """The agent of `form` and a function starting its run as a workflow (build before launch)."""

    async def wait_here() -> str:
        # Released by the test once the consumer has received the first event: the run is still going then.
        while gate is not None and not gate.is_set():
            await asyncio.sleep(0.02)
        if script.fail:
            raise RuntimeError('the tool failed')
        return 'released'

    if form == 'wrapper':
        agent = Agent(script.model(), name=name, tools=[wait_here])
        durable = DBOSAgent(
            agent, event_stream_topic=topic, event_stream_handler=handler, model_step_config=model_step_config
        )

        async def start_wrapper(prompt: str) -> Any:
            return await durable.run(prompt)

        return durable, start_wrapper
    capability = DBOSDurability[None](
        event_stream_topic=topic, event_stream_handler=handler, model_step_config=model_step_config
    )
    agent = Agent(script.model(), name=name, tools=[wait_here], capabilities=[capability])

    @DBOS.workflow(name=f'{name}.user_workflow')
    async def user_workflow(prompt: str) -> Any:
        return await agent.run(prompt)

    return capability, user_workflow


async def start(agent: Any, starter: Callable[[str], Awaitable[Any]], prompt: str = 'go') -> Run:
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        task = asyncio.ensure_future(starter(prompt))
    # The consumer needs the workflow to exist.
    deadline = time.monotonic() + TIMEOUT
    while await DBOS.get_workflow_status_async(workflow_id) is None:
        assert time.monotonic() < deadline
        assert not task.done(), task
        await asyncio.sleep(0.01)
    return Run(workflow_id, task, agent)


def consume(run: Run, **kwargs: Any) -> DurableAgentRunEvents[Any]:
    return run.agent.stream_agent_events(run.workflow_id, polling_interval=POLL, **kwargs)


async def read_all(events: DurableAgentRunEvents[Any]) -> list[tuple[int, Any]]:
    got: list[tuple[int, Any]] = []
    async with events:
        async for event in events:
            got.append((events.offset, event))
    return got


def terminal_output(event: Any) -> Any:
    """The output carried by the terminal event (which must be one)."""
    assert isinstance(event, AgentRunResultEvent)
    return cast('AgentRunResultEvent[Any]', event).result.output


def comparable(event: Any) -> Any:
    if isinstance(event, AgentRunResultEvent):
        return ('result', terminal_output(event))
    return event


def workflow_written(events: list[Any]) -> int:
    """How many of the events (all of a run's) were written from workflow code, one step each."""
    step_published = (PartStartEvent, PartDeltaEvent, PartEndEvent, FinalResultEvent, UnitRetryEvent)
    return sum(not isinstance(event, step_published) for event in events)


def text_piece(event: Any) -> str | None:
    """The text a streamed event adds (a text part's start carries the first delta)."""
    if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
        return event.part.content
    if isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
        return event.delta.content_delta
    return None


def text_of(events: list[Any]) -> str:
    return ''.join(piece for piece in map(text_piece, events) if piece)


@both_backends
@pytest.mark.parametrize('form', FORMS)
async def test_live_events_arrive_while_the_run_executes(
    form: Form, agent_name: str, dbos_launch: Callable[[], None], backend: str
) -> None:
    gate = threading.Event()
    script = Script(deltas=5, delay=0.05)
    agent, starter = build(form, agent_name, script, gate=gate)
    dbos_launch()
    run = await start(agent, starter)

    received: list[Any] = []
    latencies: list[float] = []
    async with consume(run) as events:
        async for event in events:
            now = time.monotonic()
            received.append(event)
            gate.set()  # the tool waits for this: the first event came before the run could end
            produced = script.produced.get(text_piece(event) or '')
            if produced is not None:
                latencies.append(now - produced)
            if len(received) == 1:
                assert not run.task.done()
    result = await asyncio.wait_for(run.task, TIMEOUT)

    output = result
    assert terminal_output(received[-1]) == output.output == 'b0 b1 b2 b3 b4 '
    assert events.result is not None
    assert events.result.output == output.output
    assert events.result.all_messages() == output.all_messages()
    assert events.result.usage == output.usage
    assert text_of(received) == 'a0 a1 a2 a3 a4 b0 b1 b2 b3 b4 '
    kinds = [type(e).__name__ for e in received if not isinstance(e, PartDeltaEvent)]
    assert 'FunctionToolCallEvent' in kinds
    assert 'FunctionToolResultEvent' in kinds
    assert kinds.index('FunctionToolCallEvent') < kinds.index('FunctionToolResultEvent')
    print(
        f'\n[{form}, {backend}] model delta -> consumer latency: min {min(latencies) * 1000:.0f} ms, '
        f'median {sorted(latencies)[len(latencies) // 2] * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms'
    )


@pytest.mark.parametrize('form', FORMS)
async def test_a_consumer_resumes_after_its_last_event_exactly_once(
    form: Form, agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    agent, starter = build(form, agent_name, Script(deltas=12, delay=0.01))
    dbos_launch()
    run = await start(agent, starter)
    everything = await read_all(consume(run))
    await asyncio.wait_for(run.task, TIMEOUT)
    assert isinstance(everything[-1][1], AgentRunResultEvent)
    offsets = [offset for offset, _ in everything]
    assert offsets == sorted(set(offsets))

    for stop_after in (1, 3, len(everything) // 2, len(everything) - 1):
        first = consume(run)
        head: list[tuple[int, Any]] = []
        async with first:
            async for event in first:
                head.append((first.offset, event))
                if len(head) == stop_after:
                    break
        rest = await read_all(consume(run, from_offset=first.offset + 1))
        assert [(o, comparable(e)) for o, e in head + rest] == [(o, comparable(e)) for o, e in everything], stop_after


@pytest.mark.parametrize('form', FORMS)
async def test_a_long_model_stream_is_published_in_few_writes(
    form: Form, agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    deltas = 200
    topic = EventStreamTopic(TOPIC, batch_interval=timedelta(milliseconds=100))
    agent, starter = build(form, agent_name, Script(deltas=deltas, delay=0.002), topic=topic)
    dbos_launch()
    run = await start(agent, starter)
    received = [event for _, event in await read_all(consume(run))]
    await asyncio.wait_for(run.task, TIMEOUT)

    expected = ''.join(f'a{i} ' for i in range(deltas)) + ''.join(f'b{i} ' for i in range(deltas))
    assert text_of(received) == expected
    # The engine's writes: the rows of the workflow's stream written by the model steps.
    rows = [row async for row in DBOS.read_stream_async(run.workflow_id, TOPIC)]
    unit_rows = [row for row in rows if row['kind'] == 'unit']
    print(f'\n[{form}] {2 * deltas} deltas in {len(unit_rows)} model-step writes, {len(rows)} rows in all')
    assert len(unit_rows) <= 2 * deltas / 5


@pytest.mark.parametrize('form', FORMS)
async def test_an_event_stream_handler_sees_what_the_consumer_sees(
    form: Form, agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    handled: list[AgentStreamEvent] = []

    async def handler(ctx: RunContext[None], stream: Any) -> None:
        async for event in stream:
            handled.append(event)

    agent, starter = build(form, agent_name, Script(deltas=4), handler=handler)
    dbos_launch()
    run = await start(agent, starter)
    received = [event for _, event in await read_all(consume(run))]
    await asyncio.wait_for(run.task, TIMEOUT)

    assert isinstance(received[-1], AgentRunResultEvent)
    assert text_of(handled) == text_of(received) == 'a0 a1 a2 a3 b0 b1 b2 b3 '
    assert [e for e in received[:-1] if isinstance(e, FunctionToolCallEvent | FunctionToolResultEvent)] == [
        e for e in handled if isinstance(e, FunctionToolCallEvent | FunctionToolResultEvent)
    ]
    assert received[:-1] == handled


@pytest.mark.parametrize('form', FORMS)
async def test_the_topic_filter_drops_events_but_not_the_result(
    form: Form, agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    topic = EventStreamTopic(TOPIC, events=lambda event: not isinstance(event, PartDeltaEvent))
    agent, starter = build(form, agent_name, Script(deltas=4), topic=topic)
    dbos_launch()
    run = await start(agent, starter)
    received = [event for _, event in await read_all(consume(run))]
    await asyncio.wait_for(run.task, TIMEOUT)
    assert not any(isinstance(e, PartDeltaEvent) for e in received)
    assert terminal_output(received[-1]) == 'b0 b1 b2 b3 '


async def test_a_client_process_reads_the_events_with_a_dbos_client(
    agent_name: str, dbos_launch: Callable[[], None], database_url: str
) -> None:
    agent, starter = build('wrapper', agent_name, Script(deltas=4))
    dbos_launch()
    run = await start(agent, starter)
    client = DBOSClient(system_database_url=database_url)
    try:
        events = stream_agent_events(run.workflow_id, TOPIC, output_type=str, client=client, polling_interval=POLL)
        received = [event for _, event in await read_all(events)]
    finally:
        client.destroy()
    result = await asyncio.wait_for(run.task, TIMEOUT)
    assert terminal_output(received[-1]) == result.output
    assert text_of(received) == 'a0 a1 a2 a3 b0 b1 b2 b3 '


@pytest.mark.parametrize('form', FORMS)
async def test_without_a_topic_the_steps_are_unchanged_and_the_consumer_is_refused(
    form: Form, agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    agent, starter = build(form, agent_name, Script(deltas=2), topic=None)
    with_topic, topic_starter = build(form, f'{agent_name}_t', Script(deltas=2))
    dbos_launch()
    run = await start(agent, starter)
    await asyncio.wait_for(run.task, TIMEOUT)
    steps = await workflow_step_names_async(run.workflow_id)
    assert not any(step.startswith('DBOS.') for step in steps), steps
    with pytest.raises(UserError, match='event_stream_topic'):
        agent.stream_agent_events(run.workflow_id)

    published = await start(with_topic, topic_starter)
    received = [event for _, event in await read_all(consume(published))]
    await asyncio.wait_for(published.task, TIMEOUT)
    published_steps = await workflow_step_names_async(published.workflow_id)
    # Each event published from workflow code (not a model step's) is a checkpointed write, the result too; the
    # wrapper also closes the stream.
    assert published_steps.count('DBOS.writeStream') == workflow_written(received)
    assert published_steps.count('DBOS.closeStream') == (1 if form == 'wrapper' else 0)


@pytest.mark.parametrize('form', FORMS)
async def test_a_retried_model_step_is_announced_before_its_repeated_events(
    form: Form, agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    retries: StepConfig = {'retries_allowed': True, 'max_attempts': 3, 'interval_seconds': 0.01}
    script = Script(deltas=6, flaky_stream=True)
    agent, starter = build(form, agent_name, script, model_step_config=retries)
    dbos_launch()
    run = await start(agent, starter)
    received = [event for _, event in await read_all(consume(run))]
    result = await asyncio.wait_for(run.task, TIMEOUT)

    assert script.attempts == 2
    marker = next(index for index, event in enumerate(received) if isinstance(event, UnitRetryEvent))
    assert received[marker] == UnitRetryEvent(unit='model_request', attempt=2)
    # The failed attempt's partial text, then the whole response again.
    assert text_of(received[:marker]) == 'a0 a1 a2 a3 a4 a5 b0 b1 b2 b3 '
    assert text_of(received[marker + 1 :]) == result.output == 'b0 b1 b2 b3 b4 b5 '
    assert terminal_output(received[-1]) == result.output

    if HAS_RESPONSE_ORIGIN:
        # pydantic-ai 2.78's `origin`: the repeated step streams under its next execution attempt, which
        # supersedes the failed one's; everything before the marker is the first execution.
        before = [e.origin for e in received[:marker] if getattr(e, 'origin', None) is not None]
        after = [e.origin for e in received[marker + 1 :] if getattr(e, 'origin', None) is not None]
        assert before
        assert after
        assert {origin.execution_attempt for origin in before} == {1}
        assert {origin.execution_attempt for origin in after} == {2}
        assert after[0].supersedes(before[-1])

    # A consumer that stopped inside the failed attempt and resumes is told of the retry all the same.
    everything = await read_all(consume(run))
    for stop_at in (marker - 2, marker - 1, marker):
        rest = await read_all(consume(run, from_offset=everything[stop_at][0] + 1))
        assert [(o, comparable(e)) for o, e in rest] == [(o, comparable(e)) for o, e in everything[stop_at + 1 :]]


@pytest.mark.parametrize('form', FORMS)
async def test_a_failed_run_ends_the_stream_without_a_result(
    form: Form, agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    agent, starter = build(form, agent_name, Script(deltas=3, fail=True))
    dbos_launch()
    run = await start(agent, starter)
    events = consume(run)
    received = [event for _, event in await asyncio.wait_for(read_all(events), TIMEOUT)]
    with pytest.raises(RuntimeError, match='the tool failed'):
        await asyncio.wait_for(run.task, TIMEOUT)
    # What the run published before it failed, and then the end: the workflow's result says what happened.
    assert text_of(received) == 'a0 a1 a2 '
    assert isinstance(received[-1], FunctionToolCallEvent)
    assert events.result is None


def test_wrong_topics_are_refused() -> None:
    with pytest.raises(UserError, match='needs a name'):
        EventStreamTopic('')
    with pytest.raises(UserError, match='from_offset'):
        stream_agent_events('workflow', TOPIC, from_offset=-1)
    with pytest.raises(UserError, match='event_stream_topic'):
        DBOSDurability[None]().stream_agent_events('workflow')


@both_backends
@pytest.mark.parametrize('form', FORMS)
async def test_a_worker_killed_mid_stream_leaves_a_complete_stream_with_a_retry_marker(
    form: Form, database_url: str, backend: str
) -> None:
    name = f'live_crash_{form}_{uuid.uuid4().hex[:6]}'
    workflow_id = str(uuid.uuid4())
    killed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(APP), database_url, name, workflow_id, form],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    # A consumer in a process that does not run the workflow: it reads what the killed worker published and follows
    # the recovery live.
    client = DBOSClient(system_database_url=database_url)
    try:
        events = stream_agent_events(
            workflow_id, live_events_app.TOPIC, output_type=str, client=client, polling_interval=POLL
        )
        first = await anext(events)
        reading = asyncio.ensure_future(read_all(events))
        with dbos_session(database_url, reset=False) as launch:
            live_events_app.build(name, form, crash=False)
            launch()  # recovers the killed workflow
            handle: WorkflowHandleAsync[AgentRunResult[str]] = await DBOS.retrieve_workflow_async(workflow_id)
            result = await asyncio.wait_for(handle.get_result(), TIMEOUT)
            received = [first, *(event for _, event in await asyncio.wait_for(reading, TIMEOUT))]
            steps = await workflow_step_names_async(workflow_id)
    finally:
        client.destroy()

    output = result.output
    assert output == terminal_output(received[-1]) == live_events_app.TEXT
    retries = [index for index, event in enumerate(received) if isinstance(event, UnitRetryEvent)]
    assert len(retries) == 1, received
    before, after = received[: retries[0]], received[retries[0] + 1 :]
    assert received[retries[0]] == UnitRetryEvent(unit='model_request', attempt=2)
    # The killed attempt published the first half; the recovered step publishes the whole response again.
    half = ''.join(f't{i} ' for i in range(live_events_app.DELTAS // 2))
    assert text_of(before).endswith(half)
    assert text_of(after) == live_events_app.TEXT
    # The workflow-code events were published exactly once: two tool calls, then two results.
    tool_events = [type(e).__name__ for e in received if isinstance(e, FunctionToolCallEvent | FunctionToolResultEvent)]
    assert tool_events == ['FunctionToolCallEvent'] * 2 + ['FunctionToolResultEvent'] * 2
    assert steps.count('DBOS.writeStream') == workflow_written(received)


async def test_outside_a_workflow_the_topic_changes_nothing(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    script = Script(deltas=2)
    capability = DBOSDurability[None](event_stream_topic=TOPIC)
    calls: list[str] = []

    def wait_here() -> str:
        calls.append('tool')
        return 'released'

    agent = Agent(script.model(), name=agent_name, tools=[wait_here], capabilities=[capability])
    dbos_launch()
    # Not streamed (no handler), no stream written (there is no workflow to write to).
    result = await agent.run('go')
    assert result.output == 'done'
    assert calls == ['tool']
