"""A worker killed (SIGKILL) mid-run: a new worker finishes the run without re-running completed model/tool calls."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest
from core_helpers import WORKFLOW_TIMEOUT, activity_names
from crash_agent import (
    HAS_WORKFLOW_STREAMS,
    LIVE_CHUNKS,
    CrashWorkflow,
    HeartbeatCrashWorkflow,
    LiveCrashWorkflow,
    heartbeat_crash_agent,
    live_crash_agent,
    temporal_crash_agent,
)
from pydantic_ai.messages import PartDeltaEvent, PartStartEvent, TextPart, TextPartDelta
from pydantic_ai.run import AgentRunResultEvent
from temporalio.client import Client, WorkflowHandle
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment

from durable_temporal import AgentPlugin, PydanticAIPayloadConverter, TemporalDurability, UnitRetryEvent
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio


async def _wait_for_line(log: Path, line: str, process: subprocess.Popen[bytes]) -> None:
    with anyio.fail_after(60):
        while not (log.exists() and line in log.read_text().splitlines()):
            assert process.poll() is None, 'the worker process exited early'
            await anyio.sleep(0.05)


def _worker_process(client: Client, task_queue: str, *, block: bool) -> subprocess.Popen[bytes]:
    """A worker in a process of its own (`crash_worker.py`); with `block`, `step_two` waits until it is killed."""
    worker_env = {name: value for name, value in os.environ.items() if name != 'DURABLE_CRASH_BLOCK'}
    if block:
        worker_env['DURABLE_CRASH_BLOCK'] = '1'
    return subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).parent / 'crash_worker.py'),
            client.service_client.config.target_host,
            task_queue,
        ],
        env=worker_env,
        stdout=subprocess.DEVNULL,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


async def _start_and_kill_mid_run(client: Client, task_queue: str, log: Path) -> WorkflowHandle[Any, str]:
    """Start the crash workflow on a worker process and SIGKILL it inside `step_two` (after model 0 and 1)."""
    process = _worker_process(client, task_queue, block=True)
    try:
        handle = await client.start_workflow(
            CrashWorkflow.run, id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
        )
        # The first worker ran model 0, step_one and model 1, and is inside step_two: kill it there.
        await _wait_for_line(log, 'step_two start', process)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        _stop(process)
    return handle


async def test_killed_worker_run_finishes_on_a_new_worker_without_repeating_work(
    env: WorkflowEnvironment, client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / 'calls.log'
    monkeypatch.setenv('DURABLE_CRASH_LOG', str(log))
    handle = await _start_and_kill_mid_run(client, task_queue, log)

    async with agent_worker(client, workflows=[CrashWorkflow], agents=[temporal_crash_agent], task_queue=task_queue):
        assert await handle.result() == 'finished'

    lines = log.read_text().splitlines()
    # Completed model requests and tool calls ran once; only the attempt lost with the killed worker ran again.
    # `model 2` ran on the new worker, which rebuilt the conversation from the workflow history (the first worker
    # sent model 1's request): it saw all 5 messages although its activity was only sent the newest one.
    assert lines == [
        'model 0 of 1',
        'step_one',
        'model 1 of 3',
        'step_two start',
        'step_two start',
        'step_two done with 10000 bytes of deps',
        'model 2 of 5',
    ]
    # Only the first activity carried the deps (10 KB, over the inline limit); the others name them by digest.
    history = await handle.fetch_history()
    deps_arguments = [
        event.activity_task_scheduled_event_attributes.input.payloads[1].data
        for event in history.events
        if event.HasField('activity_task_scheduled_event_attributes')
    ]
    assert [len(data) > 10_000 for data in deps_arguments] == [True, False, False, False, False]
    assert await activity_names(client, handle) == [
        'agent__crash__model_request',
        'agent__crash__toolset__<agent>__call_tool',
        'agent__crash__model_request',
        'agent__crash__toolset__<agent>__call_tool',
        'agent__crash__model_request',
    ]


async def test_a_second_worker_process_rebuilds_the_conversation_and_deps_from_history_and_checks_them(
    env: WorkflowEnvironment, client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16 (9): worker process A is killed after two model requests; process B, whose caches are empty, runs the
    third from a delta on the second: it rebuilds the conversation and the deps from the workflow history, and their
    digests match what the workflow sent (a mismatch would fail the run)."""
    log = tmp_path / 'calls.log'
    monkeypatch.setenv('DURABLE_CRASH_LOG', str(log))
    handle = await _start_and_kill_mid_run(client, task_queue, log)
    second = _worker_process(client, task_queue, block=False)
    try:
        with anyio.fail_after(90):
            assert await handle.result() == 'finished'
    finally:
        _stop(second)

    assert log.read_text().splitlines() == [
        'model 0 of 1',
        'step_one',
        'model 1 of 3',
        'step_two start',
        'step_two start',
        'step_two done with 10000 bytes of deps',
        'model 2 of 5',
    ]
    # What the model requests were sent: the third one only its newest message, a delta on the second with the
    # digest of the 4 messages it reuses, and its deps by digest.
    converter = DataConverter(payload_converter_class=PydanticAIPayloadConverter).payload_converter
    history = await handle.fetch_history()
    requests = [
        converter.from_payloads(list(attributes.input.payloads))
        for event in history.events
        if event.HasField('activity_task_scheduled_event_attributes')
        for attributes in [event.activity_task_scheduled_event_attributes]
        if attributes.activity_type.name == 'agent__crash__model_request'
    ]
    third, third_deps = requests[2]
    assert (third['history_index'], third['history_base'], third['history_keep']) == (2, 1, 4)
    assert len(third['messages']) == 1
    assert len(third['history_digest']) == 64
    assert third_deps is None
    assert '__durable_deps_digest__' in third['serialized_run_context']


@pytest.mark.skipif(not HAS_WORKFLOW_STREAMS, reason='temporalio < 1.27.0 has no Workflow Streams')
async def test_a_worker_killed_mid_model_stream_gives_the_consumer_a_retry_notice_then_the_whole_stream(
    env: WorkflowEnvironment, client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Live events (#14): the consumer keeps reading across the crash; the retried model activity's events follow a
    `UnitRetryEvent`, and the stream ends with the run's result."""
    log = tmp_path / 'calls.log'
    monkeypatch.setenv('DURABLE_CRASH_LOG', str(log))
    process = _worker_process(client, task_queue, block=True)
    received: list[Any] = []
    try:
        handle = await client.start_workflow(
            LiveCrashWorkflow.run, id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
        )
        events = TemporalDurability.from_agent(live_crash_agent).stream_agent_events(client, handle, output_type=str)
        iterator = aiter(events)
        with anyio.fail_after(60):
            while len([e for e in received if isinstance(e, PartDeltaEvent)]) < 9:
                received.append(await anext(iterator))
        await _wait_for_line(log, 'stream blocked', process)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        _stop(process)

    async with agent_worker(
        client, workflows=[LiveCrashWorkflow], plugins=[AgentPlugin(live_crash_agent)], task_queue=task_queue
    ):
        with anyio.fail_after(90):
            async with events:
                async for event in events:
                    received.append(event)
            output = await handle.result()

    assert output == ''.join(LIVE_CHUNKS)
    retries = [i for i, e in enumerate(received) if isinstance(e, UnitRetryEvent)]
    assert len(retries) == 1
    assert received[retries[0]] == UnitRetryEvent(unit='model_request', attempt=2)
    # Before the notice, the killed attempt's first 10 chunks; after it, the whole response again.
    assert _streamed_text(received[: retries[0]]) == ''.join(LIVE_CHUNKS[:10])
    assert _streamed_text(received[retries[0] :]) == output
    assert isinstance(received[-1], AgentRunResultEvent)


def _streamed_text(events: list[Any]) -> str:
    text = ''
    for event in events:
        if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
            text += event.part.content
        elif isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
            text += event.delta.content_delta
    return text


async def test_a_worker_killed_mid_model_stream_is_retried_within_the_heartbeat_timeout(
    env: WorkflowEnvironment, client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """#14: the streamed model activity heartbeats, so with `heartbeat_timeout` 2 s and start-to-close 2 min, the
    request lost with a SIGKILLed worker runs again on the next worker within seconds."""
    import time

    log = tmp_path / 'calls.log'
    monkeypatch.setenv('DURABLE_CRASH_LOG', str(log))
    process = _worker_process(client, task_queue, block=True)
    try:
        handle = await client.start_workflow(
            HeartbeatCrashWorkflow.run, id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
        )
        await _wait_for_line(log, 'stream blocked', process)
        await anyio.sleep(3)  # the stream is alive and blocked: heartbeats keep it from timing out meanwhile
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        killed_at = time.monotonic()
    finally:
        _stop(process)

    async with agent_worker(
        client, workflows=[HeartbeatCrashWorkflow], plugins=[AgentPlugin(heartbeat_crash_agent)], task_queue=task_queue
    ):
        with anyio.fail_after(100):  # under the 2 min start-to-close timeout: only a heartbeat timeout retries it
            output = await handle.result()
    elapsed = time.monotonic() - killed_at

    assert output == ''.join(LIVE_CHUNKS)
    assert elapsed < 60, f'the lost request was retried {elapsed:.1f} s after the kill'
    history = await handle.fetch_history()
    [started, *_] = [
        event.activity_task_scheduled_event_attributes
        for event in history.events
        if event.HasField('activity_task_scheduled_event_attributes')
    ]
    assert started.heartbeat_timeout.ToTimedelta().total_seconds() == 2
    timed_out = [e for e in history.events if e.HasField('activity_task_timed_out_event_attributes')]
    retried = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.HasField('activity_task_started_event_attributes')
    ]
    assert not timed_out  # a retry of the same activity, not a failure of the run
    assert max(retried) == 2
