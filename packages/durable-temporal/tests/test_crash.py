"""A worker killed (SIGKILL) mid-run: a new worker finishes the run without re-running completed model/tool calls."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import anyio
import pytest
from core_helpers import WORKFLOW_TIMEOUT, activity_names
from crash_agent import CrashWorkflow, temporal_crash_agent
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio


async def _wait_for_line(log: Path, line: str, process: subprocess.Popen[bytes]) -> None:
    with anyio.fail_after(60):
        while not (log.exists() and line in log.read_text().splitlines()):
            assert process.poll() is None, 'the worker process exited early'
            await anyio.sleep(0.05)


async def test_killed_worker_run_finishes_on_a_new_worker_without_repeating_work(
    env: WorkflowEnvironment, client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / 'calls.log'
    monkeypatch.setenv('DURABLE_CRASH_LOG', str(log))
    worker_env = {**os.environ, 'DURABLE_CRASH_BLOCK': '1'}
    process = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).parent / 'crash_worker.py'),
            client.service_client.config.target_host,
            task_queue,
        ],
        env=worker_env,
        stdout=subprocess.DEVNULL,
    )
    try:
        handle = await client.start_workflow(
            CrashWorkflow.run, id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
        )
        # The first worker ran model 0, step_one and model 1, and is inside step_two: kill it there.
        await _wait_for_line(log, 'step_two start', process)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)

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
