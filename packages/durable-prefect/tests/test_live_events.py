"""Live events: a run publishes its events to flow-run artifacts, a consumer reads them while the run executes."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, cast
from uuid import UUID

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.context import FlowRunContext
from prefect.settings import PREFECT_API_URL, PREFECT_LOCAL_STORAGE_PATH
from pydantic import TypeAdapter
from pydantic_ai import Agent, RunContext
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import (
    AgentStreamEvent,
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    ModelMessage,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.run import AgentRunResultEvent

from durable_prefect import (
    DurableAgentRunEvents,
    EventStreamTopic,
    PrefectAgent,
    PrefectDurability,
    UnitRetryEvent,
    stream_agent_events,
)

from ._helpers import flow_runs_named

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures('prefect_server')]

Form = Literal['wrapper', 'capability']
FORMS: list[Form] = ['wrapper', 'capability']
POLL = timedelta(milliseconds=50)
_event_adapter: TypeAdapter[AgentStreamEvent] = TypeAdapter(AgentStreamEvent)


@dataclass
class Script:
    """A streaming model: text deltas and a call of `wait_for_consumer` on the first request, more text after it."""

    first_deltas: int = 5
    final_deltas: int = 20
    delay: float = 0.01
    produced: dict[str, float] = field(default_factory=dict[str, float])
    consumer_started: threading.Event = field(default_factory=threading.Event)

    async def stream(self, messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
        returned = any(isinstance(part, ToolReturnPart) for message in messages for part in message.parts)
        if not returned:
            for index in range(self.first_deltas):
                await asyncio.sleep(self.delay)
                self.produced[f'a{index} '] = time.monotonic()
                yield f'a{index} '
            yield {0: DeltaToolCall(name='wait_for_consumer', json_args='{}', tool_call_id='call-1')}
            return
        for index in range(self.final_deltas):
            await asyncio.sleep(self.delay)
            self.produced[f'b{index} '] = time.monotonic()
            yield f'b{index} '

    def expected_output(self) -> str:
        return ''.join(f'b{index} ' for index in range(self.final_deltas))


def _agent(name: str, script: Script, capabilities: list[Any] | None = None) -> Agent[None, str]:
    agent = Agent(FunctionModel(stream_function=script.stream), name=name, capabilities=capabilities or [])

    @agent.tool_plain
    async def wait_for_consumer() -> str:
        # Set by the test once a consumer has received an event: the run cannot end before that.
        for _ in range(1200):
            if script.consumer_started.is_set():
                return 'seen'
            await asyncio.sleep(0.05)
        return 'timed out'

    return agent


def _flow_run_id() -> UUID:
    context = FlowRunContext.get()
    assert context is not None
    assert context.flow_run is not None
    return context.flow_run.id


@dataclass
class Started:
    """A durable run started in the background, and how to read its events."""

    task: asyncio.Task[Any]
    flow_run_id: UUID
    source: PrefectAgent[None, str] | PrefectDurability[None]

    def read(self, *, from_offset: int = 0) -> DurableAgentRunEvents[Any]:
        return self.source.stream_agent_events(
            self.flow_run_id, output_type=str, from_offset=from_offset, polling_interval=POLL
        )


async def _start(
    form: Form,
    name: str,
    script: Script,
    *,
    topic: str | EventStreamTopic = 'agent-events',
    handler: Callable[[RunContext[Any], AsyncIterable[AgentStreamEvent]], Awaitable[None]] | None = None,
) -> Started:
    """Start the agent's run in a flow, in the background: the capability in the user's flow, the wrapper at top level."""
    if form == 'capability':
        capability = PrefectDurability[None](event_stream_topic=topic, event_stream_handler=handler)
        agent = _agent(name, script, [capability])
        ids: asyncio.Queue[UUID] = asyncio.Queue()

        @flow(name=f'{name} user flow')
        async def user_flow() -> str:
            ids.put_nowait(_flow_run_id())
            return (await agent.run('go')).output

        task = asyncio.ensure_future(user_flow())
        flow_run_id = await asyncio.wait_for(ids.get(), 60)
        # The capability bound to the agent is a copy: its method reads the topic the same way.
        return Started(task, flow_run_id, capability)
    prefect_agent = PrefectAgent(_agent(name, script), event_stream_topic=topic, event_stream_handler=handler)
    task = asyncio.ensure_future(prefect_agent.run('go'))
    flow_run_id = await _flow_run_named(f'{name} Run')
    return Started(task, flow_run_id, prefect_agent)


async def _flow_run_named(flow_name: str) -> UUID:
    for _ in range(600):
        runs = await flow_runs_named(flow_name)
        if runs:
            return runs[0].id
        await asyncio.sleep(0.1)
    raise AssertionError(f'no flow run of {flow_name!r}')


async def _read_all(events: DurableAgentRunEvents[Any]) -> list[tuple[int, Any]]:
    seen: list[tuple[int, Any]] = []
    async with events:
        async for event in events:
            seen.append((events.offset, event))
    return seen


def _text(items: list[tuple[int, Any]]) -> str:
    """The streamed text: the text parts' first pieces and their deltas."""
    pieces: list[str] = []
    for _, event in items:
        if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
            pieces.append(event.part.content)
        elif isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
            pieces.append(event.delta.content_delta)
    return ''.join(pieces)


def _comparable(items: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
    return [
        (
            offset,
            cast(Any, event).result.output
            if isinstance(event, AgentRunResultEvent)
            else _event_adapter.dump_python(event),
        )
        for offset, event in items
    ]


async def _artifact_count(flow_run_id: UUID) -> int:
    async with get_client() as client:
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])), limit=200
        )
    return len(artifacts)


@pytest.mark.parametrize('form', FORMS)
async def test_live_events_arrive_while_the_run_executes(form: Form) -> None:
    script = Script()
    started = await _start(form, f'live-{form}', script)
    received: dict[str, float] = {}
    items: list[tuple[int, Any]] = []
    async with started.read() as events:
        async for event in events:
            items.append((events.offset, event))
            if not script.consumer_started.is_set():
                # The run waits in its tool call for this: the first event came while it executed.
                assert not started.task.done()
                script.consumer_started.set()
            text = _text([(0, event)])
            if text:
                received.setdefault(text, time.monotonic())
    output = await asyncio.wait_for(started.task, 120)
    assert output == script.expected_output() if form == 'capability' else output.output == script.expected_output()
    terminal: Any = items[-1][1]
    assert isinstance(terminal, AgentRunResultEvent)
    assert cast('AgentRunResultEvent[str]', terminal).result.output == script.expected_output()
    assert events.result is not None
    assert events.result.output == script.expected_output()
    # Increasing offsets, each once; the only ones skipped are left empty before each model request's stream (for a
    # retry marker).
    offsets = [offset for offset, _ in items]
    assert offsets == sorted(set(offsets))
    starts = [offset for offset, event in items if isinstance(event, PartStartEvent) and event.index == 0]
    assert sorted(set(range(offsets[-1] + 1)) - set(offsets)) == [offset - 1 for offset in starts]
    kinds: list[type[Any]] = [type(event) for _, event in items]
    assert FunctionToolCallEvent in kinds
    assert FunctionToolResultEvent in kinds
    assert kinds.index(FunctionToolCallEvent) < kinds.index(FunctionToolResultEvent)
    assert _text(items) == ''.join(f'a{index} ' for index in range(5)) + script.expected_output()
    latencies = [received[delta] - produced for delta, produced in script.produced.items() if delta in received]
    print(
        f'\n{form}: delta -> consumer latency median {statistics.median(latencies) * 1000:.0f} ms, '
        f'max {max(latencies) * 1000:.0f} ms over {len(latencies)} deltas (batch 100 ms, poll 50 ms)'
    )


@pytest.mark.parametrize('form', FORMS)
async def test_a_consumer_resumes_from_its_offset(form: Form) -> None:
    script = Script()
    script.consumer_started.set()
    started = await _start(form, f'resume-{form}', script)
    first: list[tuple[int, Any]] = []
    async with started.read() as events:
        async for event in events:
            first.append((events.offset, event))
            if len(first) == 6:
                break
        resume_at = events.offset + 1
    rest = await _read_all(started.read(from_offset=resume_at))
    await asyncio.wait_for(started.task, 120)
    everything = await _read_all(started.read())
    assert _comparable(first + rest) == _comparable(everything)
    assert isinstance(everything[-1][1], AgentRunResultEvent)


@pytest.mark.parametrize('form', FORMS)
async def test_a_long_model_stream_is_published_in_few_writes(form: Form) -> None:
    script = Script(first_deltas=0, final_deltas=200, delay=0.005)
    script.consumer_started.set()
    topic = EventStreamTopic('agent-events', batch_interval=timedelta(milliseconds=100))
    started = await _start(form, f'batches-{form}', script, topic=topic)
    items = await _read_all(started.read())
    await asyncio.wait_for(started.task, 120)
    assert _text(items) == script.expected_output()
    deltas = sum(isinstance(event, PartDeltaEvent | PartStartEvent) for _, event in items)
    writes = await _artifact_count(started.flow_run_id)
    print(f'\n{form}: {deltas} deltas, {len(items)} events, {writes} writes (artifacts)')
    assert deltas >= 200
    assert writes <= deltas / 5


@pytest.mark.parametrize('form', FORMS)
async def test_an_event_stream_handler_sees_what_the_consumer_sees(form: Form) -> None:
    handled: list[str] = []

    async def handler(ctx: RunContext[Any], stream: AsyncIterable[AgentStreamEvent]) -> None:
        async for event in stream:
            handled.append(type(event).__name__)

    script = Script()
    script.consumer_started.set()
    started = await _start(form, f'handler-{form}', script, handler=handler)
    items = await _read_all(started.read())
    await asyncio.wait_for(started.task, 120)
    consumed = [type(event).__name__ for _, event in items[:-1]]
    assert 'PartDeltaEvent' in handled
    assert 'FunctionToolResultEvent' in handled
    assert consumed == handled


@pytest.mark.parametrize('form', FORMS)
async def test_only_selected_events_are_published_and_the_result_always(form: Form) -> None:
    script = Script()
    script.consumer_started.set()
    topic = EventStreamTopic('tools-only', events=lambda event: isinstance(event, FunctionToolResultEvent))
    started = await _start(form, f'filtered-{form}', script, topic=topic)
    items = await _read_all(started.read())
    await asyncio.wait_for(started.task, 120)
    assert [type(event) for _, event in items] == [FunctionToolResultEvent, AgentRunResultEvent]


async def test_reading_without_a_topic_is_a_user_error() -> None:
    script = Script()
    prefect_agent = PrefectAgent(_agent('no-topic', script))
    with pytest.raises(UserError, match='event_stream_topic'):
        prefect_agent.stream_agent_events('00000000-0000-0000-0000-000000000000')
    with pytest.raises(UserError, match='event_stream_topic'):
        PrefectDurability[None]().stream_agent_events('00000000-0000-0000-0000-000000000000')
    with pytest.raises(UserError, match='from_offset'):
        stream_agent_events('00000000-0000-0000-0000-000000000000', 'topic', from_offset=-1)
    # Given explicitly, a topic is read even by an agent that does not publish to one.
    events = prefect_agent.stream_agent_events('00000000-0000-0000-0000-000000000000', topic='other')
    await events.aclose()


def test_unit_retry_event_is_exported() -> None:
    assert UnitRetryEvent(unit='model_request', attempt=2).event_kind == 'durable_unit_retry'


def _run_worker(phase: str, form: Form, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        'PREFECT_API_URL': str(PREFECT_API_URL.value()),
        'PREFECT_LOCAL_STORAGE_PATH': str(PREFECT_LOCAL_STORAGE_PATH.value()),
        'RESUME_TEST_LOG': str(tmp_path / 'calls.log'),
        'RESUME_TEST_FLOW_RUN': str(tmp_path / 'flow_run_id'),
        'RESUME_TEST_PHASE': phase,
        'LIVE_EVENTS_FORM': form,
    }
    return subprocess.run(
        [sys.executable, str(Path(__file__).with_name('live_events_worker.py'))],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.mark.parametrize('form', FORMS)
async def test_a_worker_killed_mid_stream_gives_a_complete_stream_with_a_retry_marker(
    form: Form, tmp_path: Path
) -> None:
    crashed = await asyncio.to_thread(_run_worker, 'start', form, tmp_path)
    assert crashed.returncode == 17, crashed.stderr[-3000:]
    flow_run_id = UUID((tmp_path / 'flow_run_id').read_text())
    resumed = await asyncio.to_thread(_run_worker, 'resume', form, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = ''.join(f'b{index} ' for index in range(30))
    assert resumed.stdout.strip().splitlines()[-1] == expected.strip()
    calls = (tmp_path / 'calls.log').read_text().split()
    # The first model request and the tool call ran once; the request that died ran again.
    assert calls == ['start:model-1', 'start:tool-step', 'start:model-2', 'resume:model-2']
    items = await _read_all(stream_agent_events(flow_run_id, 'agent-events', output_type=str, polling_interval=POLL))
    # Every offset once, in order; the retry marker takes the empty offset before its attempt's first event.
    offsets = [offset for offset, _ in items]
    assert offsets == sorted(offsets)
    assert len(set(offsets)) == len(offsets)
    kinds = [type(event).__name__ for _, event in items]
    print(f'\n{form}: {kinds}')
    assert kinds.count('FunctionToolCallEvent') == 1  # published by the flow once, not again by the re-run
    assert kinds.count('FunctionToolResultEvent') == 1
    assert kinds.count('UnitRetryEvent') == 1
    retry = kinds.index('UnitRetryEvent')
    before_retry, after_retry = items[:retry], items[retry + 1 :]
    assert _text(before_retry).startswith('a0 a1 a2 a3 a4 b0 ')  # the dead attempt's partial stream
    assert _text(before_retry) != 'a0 a1 a2 a3 a4 ' + expected
    assert _text(after_retry) == expected  # the retried request streamed again from its start
    terminal: Any = items[-1][1]
    assert isinstance(terminal, AgentRunResultEvent)
    assert cast('AgentRunResultEvent[str]', terminal).result.output == expected

    # A consumer that stopped inside the dead attempt (or right after the marker) and resumes from its offset gets
    # the rest exactly once, told of the retry unless it had the marker already.
    for stop_at in (retry - 2, retry - 1, retry):
        rest = await _read_all(
            stream_agent_events(
                flow_run_id, 'agent-events', output_type=str, polling_interval=POLL, from_offset=items[stop_at][0] + 1
            )
        )
        assert [(offset, repr(event)) for offset, event in rest] == [
            (offset, repr(event)) for offset, event in items[stop_at + 1 :]
        ]


async def test_run_sync_publishes_to_its_flow_run() -> None:
    script = Script()
    script.consumer_started.set()
    prefect_agent = PrefectAgent(_agent('live-sync', script), event_stream_topic='agent-events')
    result = await asyncio.to_thread(prefect_agent.run_sync, 'go')
    flow_run_id = await _flow_run_named('live-sync Sync Run')
    items = await _read_all(prefect_agent.stream_agent_events(flow_run_id, output_type=str, polling_interval=POLL))
    assert _text(items) == 'a0 a1 a2 a3 a4 ' + result.output
    terminal: Any = items[-1][1]
    assert cast('AgentRunResultEvent[str]', terminal).result.output == result.output
