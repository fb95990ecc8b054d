"""pydantic-ai 2.78's external events in a workflow: `ask` in a local activity, a signal ends the wait, both forms."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import uuid
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import anyio
import pytest
from core_helpers import WORKFLOW_TIMEOUT, activity_names
from external_event_agent import (
    AGENTS,
    WAIT_TIMEOUT,
    ExternalEventWorkflow,
    approval_agent,
    first_instructions,
    wait_for_approval,
)
from pydantic_ai import Agent
from pydantic_ai.exceptions import UserError
from pydantic_ai.models.test import TestModel
from temporalio import workflow
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker

from durable_kernel import HAS_EXTERNAL_EVENTS
from durable_temporal import AgentPlugin, PydanticAIPlugin, fail_external_event, resolve_external_event
from durable_temporal._versioning import ASK_OPERATION_PATCH, CAPABILITY_OPERATIONS_PATCH
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio

needs_external_events = pytest.mark.skipif(
    not HAS_EXTERNAL_EVENTS, reason='external events (`pydantic_ai.external_events`) exist from pydantic-ai 2.78'
)

FORMS = ['capability', 'wrapper']
ASK_ACTIVITY = {'capability': 'agent__ext_cap__external_event_ask', 'wrapper': 'agent__ext_wrap__external_event_ask'}


@pytest.fixture
def ask_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file `ask` logs its tokens to (inherited by a worker process)."""
    log = tmp_path / 'asks.log'
    monkeypatch.setenv('DURABLE_EXTERNAL_EVENT_LOG', str(log))
    return log


def local_activity_names(history: WorkflowHistory) -> list[str]:
    """The activity names of the local-activity markers of a history, in order."""
    names: list[str] = []
    for event in history.events:
        attributes = event.marker_recorded_event_attributes
        if event.HasField('marker_recorded_event_attributes') and attributes.marker_name == 'core_local_activity':
            names.append(json.loads(attributes.details['data'].payloads[0].data)['activity_type'])
    return names


def patch_markers(history: WorkflowHistory) -> list[str]:
    """The ids of the patch markers of a history, in order."""
    ids: list[str] = []
    for event in history.events:
        attributes = event.marker_recorded_event_attributes
        if event.HasField('marker_recorded_event_attributes') and attributes.marker_name == 'core_patch':
            ids.append(json.loads(attributes.details['patch-data'].payloads[0].data)['id'])
    return ids


def _signaled(event: Any) -> bool:
    return event.HasField('workflow_execution_signaled_event_attributes')


def _tokens(log: Path) -> list[str]:
    if not log.exists():
        return []
    return [line.removeprefix('ask ') for line in log.read_text().splitlines() if line.startswith('ask ')]


async def _token(log: Path, process: subprocess.Popen[bytes] | None = None) -> str:
    """The token `ask` handed out, once it did."""
    with anyio.fail_after(60):
        while not _tokens(log):
            assert process is None or process.poll() is None, 'the worker process exited early'
            await anyio.sleep(0.05)
    return _tokens(log)[0]


async def _start(client: Client, task_queue: str, form: str, mode: str) -> WorkflowHandle[Any, str]:
    return await client.start_workflow(
        ExternalEventWorkflow.run,
        args=[form, mode],
        id=f'external-{uuid.uuid4()}',
        task_queue=task_queue,
        execution_timeout=WORKFLOW_TIMEOUT,
    )


def _worker(client: Client, task_queue: str, *plugins: Any) -> AbstractAsyncContextManager[Worker]:
    return agent_worker(
        client,
        workflows=[ExternalEventWorkflow],
        plugins=[*plugins, *(AgentPlugin(agent) for agent in AGENTS.values())],
        task_queue=task_queue,
    )


@needs_external_events
@pytest.mark.parametrize('form', FORMS)
async def test_a_wait_ends_with_the_payload_its_token_is_resolved_with(
    client: Client, task_queue: str, ask_log: Path, form: str
):
    async with _worker(client, task_queue):
        handle = await _start(client, task_queue, form, 'signal')
        token = await _token(ask_log)
        # The token names the workflow (and a key of the wait), so a resolver needs nothing else.
        assert token.startswith(f'{handle.id}:')
        await resolve_external_event(client, token, {'approved': True, 'by': 'ops'})
        assert await handle.result() == "approval: {'approved': True, 'by': 'ops'}"
        # A second outcome for a wait that ended changes nothing (the workflow has completed: the server refuses it).
        with pytest.raises(Exception, match='already completed'):
            await fail_external_event(client, token, 'too late')
    assert _tokens(ask_log) == [token]
    history = await handle.fetch_history()
    # `ask` ran in the local activity named as pydantic-ai 2.78 names it, and the signal is pydantic-ai 2.78's.
    assert local_activity_names(history) == [ASK_ACTIVITY[form]]
    signals = [e.workflow_execution_signaled_event_attributes.signal_name for e in history.events if _signaled(e)]
    assert signals == ['pydantic_ai__external_event']


@needs_external_events
@pytest.mark.parametrize('form', FORMS)
async def test_a_failed_token_ends_the_wait_with_its_reason(client: Client, task_queue: str, ask_log: Path, form: str):
    async with _worker(client, task_queue):
        handle = await _start(client, task_queue, form, 'signal')
        await fail_external_event(client, await _token(ask_log), 'denied by ops')
        assert await handle.result() == 'no approval: denied by ops'


@needs_external_events
async def test_an_answer_from_ask_ends_the_wait_without_a_signal(client: Client, task_queue: str, ask_log: Path):
    async with _worker(client, task_queue):
        handle = await _start(client, task_queue, 'capability', 'answer')
        assert await handle.result() == 'approval: answered by ask'
    assert len(_tokens(ask_log)) == 1


@needs_external_events
async def test_a_wait_times_out_on_a_durable_timer(client: Client, task_queue: str, ask_log: Path):
    async with _worker(client, task_queue):
        handle = await _start(client, task_queue, 'wrapper', 'timeout')
        assert await handle.result() == f'no approval: No resolution arrived within {WAIT_TIMEOUT}.'
    history = await handle.fetch_history()
    assert any(event.HasField('timer_started_event_attributes') for event in history.events)


@needs_external_events
@pytest.mark.parametrize('form', [*FORMS, 'with-id'])
@pytest.mark.parametrize('approved', [True, False])
async def test_handle_deferred_tool_calls_waits_for_the_decision(
    client: Client, task_queue: str, ask_log: Path, form: str, approved: bool
):
    async with _worker(client, task_queue):
        handle = await _start(client, task_queue, f'approval-{form}', 'signal')
        token = await _token(ask_log)
        call_id = next(line for line in ask_log.read_text().splitlines() if line.startswith('call ')).removeprefix(
            'call '
        )
        # The JSON form of `DeferredToolResults`, as an approval UI would post it.
        await resolve_external_event(client, token, {'approvals': {call_id: approved}})
        output = await handle.result()
    assert ('refunded 0' in output) is approved, output
    names = await activity_names(client, handle)
    # The tool ran (in its activity) only once approved; the decision itself was workflow code.
    prefix = {'capability': 'agent__ext_approval_cap', 'wrapper': 'agent__ext_approval_wrap'}.get(
        form, 'agent__ext_approval_id'
    )
    assert names.count(f'{prefix}__toolset__<agent>__call_tool') == (1 if approved else 0)
    history = await handle.fetch_history()
    if form == 'with-id':
        # The handler of a capability with an `id` is its durable operation: it ran in the capability's activity, under
        # pydantic-ai 2.78's marker, as 2.78 runs it.
        assert f'{prefix}__capability__approver__ask' in names
        assert local_activity_names(history) == []
        assert ASK_OPERATION_PATCH in patch_markers(history)
    else:
        assert local_activity_names(history) == [f'{prefix}__external_event_ask']
        assert ASK_OPERATION_PATCH not in patch_markers(history)


def _worker_process(client: Client, task_queue: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).parent / 'external_event_worker.py'),
            client.service_client.config.target_host,
            task_queue,
        ],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
    )


@needs_external_events
@pytest.mark.parametrize('form', FORMS)
async def test_a_wait_survives_a_killed_worker_and_ask_is_not_called_again(
    client: Client, task_queue: str, ask_log: Path, form: str
):
    process = _worker_process(client, task_queue)
    try:
        handle = await _start(client, task_queue, form, 'signal')
        token = await _token(ask_log, process)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    # Resolved while no worker runs: the signal waits in the history for the next worker.
    await resolve_external_event(client, token, 'approved after the crash')
    async with _worker(client, task_queue):
        assert await handle.result() == 'approval: approved after the crash'
    # The new worker replayed the recorded answer of `ask`: it did not hand out a second token.
    assert _tokens(ask_log) == [token]


async def test_a_token_not_handed_out_by_a_workflow_wait_is_refused(client: Client):
    with pytest.raises(UserError, match='not handed out by a wait for an external event in a Temporal run'):
        await resolve_external_event(client, 'not-a-token', 'x')
    with pytest.raises(UserError, match='not handed out'):
        await fail_external_event(client, 'workflow-id:0123', 'x')


async def test_a_payload_that_is_not_json_is_refused(client: Client):
    with pytest.raises(UserError, match='JSON-serializable'):
        await resolve_external_event(client, f'wf:{uuid.uuid4().hex}', object())


# --- against pydantic-ai 2.78's own `TemporalDurability`: same commands, same signal, either resolver ---------------

REFERENCE_AGENTS: dict[str, Any] = {}
"""The reference's agent (pydantic-ai 2.78's `TemporalDurability`, same agent name as ours), built by the tests below."""


@workflow.defn(name='ExternalEventWorkflow')
class ReferenceExternalEventWorkflow:
    """`ExternalEventWorkflow` on the reference's capability; run unsandboxed (our packages cannot import it)."""

    @workflow.run
    async def run(self, form: str, mode: str) -> str:
        result = await REFERENCE_AGENTS[form].run('go', deps=mode)
        if form.startswith('approval'):
            return result.output
        return first_instructions(result.all_messages())


def _reference() -> tuple[Any, list[Any]]:
    """pydantic-ai 2.78's `pydantic_ai.durable_exec.temporal` and the activities of its agent."""
    # Imported by name: pyright reads the lock's pydantic-ai, which has neither.
    reference: Any = importlib.import_module('pydantic_ai.durable_exec.temporal')
    agent = Agent(
        TestModel(),
        name='ext_cap',
        deps_type=str,
        instructions=wait_for_approval,
        capabilities=[reference.TemporalDurability()],
    )
    REFERENCE_AGENTS['capability'] = agent
    return reference, list(reference.TemporalDurability.from_agent(agent).temporal_activities)


def _reference_approval() -> tuple[Any, list[Any]]:
    """pydantic-ai 2.78's module and the activities of its `approval-with-id` agent (`HandleDeferredToolCalls(id=...)`)."""
    reference: Any = importlib.import_module('pydantic_ai.durable_exec.temporal')
    agent = approval_agent('ext_approval_id', reference.TemporalDurability(), handler_id='approver')
    REFERENCE_AGENTS['approval-with-id'] = agent
    return reference, list(reference.TemporalDurability.from_agent(agent).temporal_activities)


def _reference_worker(client: Client, task_queue: str, activities: list[Any]) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[ReferenceExternalEventWorkflow],
        activities=activities,
        workflow_runner=UnsandboxedWorkflowRunner(),
    )


def _our_replayer() -> Replayer:
    return Replayer(workflows=[ExternalEventWorkflow], plugins=[PydanticAIPlugin()], debug_mode=True)


@needs_external_events
async def test_a_wait_of_the_reference_capability_is_resolved_by_ours_and_its_history_replays_on_ours(
    client: Client, task_queue: str, ask_log: Path
):
    _, activities = _reference()
    async with _reference_worker(client, task_queue, activities):
        handle = await _start(client, task_queue, 'capability', 'signal')
        # Our resolver ends the reference's wait: the same token, signal name and fields.
        await resolve_external_event(client, await _token(ask_log), 'approved by ours')
        assert await handle.result() == 'approval: approved by ours'
    history = await handle.fetch_history()
    assert local_activity_names(history) == [ASK_ACTIVITY['capability']]
    await _our_replayer().replay_workflow(history)


@needs_external_events
async def test_a_run_waiting_under_the_reference_capability_finishes_on_ours(
    client: Client, task_queue: str, ask_log: Path
):
    reference, activities = _reference()
    async with _reference_worker(client, task_queue, activities):
        handle = await _start(client, task_queue, 'capability', 'signal')
        token = await _token(ask_log)
    # The reference's worker is gone, its wait recorded; the reference's own resolver signals, ours finishes the run.
    await reference.resolve_external_event(client, token, 'approved for the reference')
    async with _worker(client, task_queue):
        assert await handle.result() == 'approval: approved for the reference'
    assert _tokens(ask_log) == [token]


@needs_external_events
@pytest.mark.parametrize('mode', ['signal', 'timeout'])
async def test_a_history_of_ours_waiting_replays_on_the_reference_capability(
    client: Client, task_queue: str, ask_log: Path, mode: str
):
    reference, _ = _reference()
    async with _worker(client, task_queue):
        handle = await _start(client, task_queue, 'capability', mode)
        if mode == 'signal':
            # The reference's resolver ends our wait.
            await reference.fail_external_event(client, await _token(ask_log), 'denied by the reference')
        await handle.result()
    history = await handle.fetch_history()
    # The client's pydantic payload converter, as the reference's own plugin would give its worker.
    replayer = Replayer(
        workflows=[ReferenceExternalEventWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),
        data_converter=client.data_converter,
        debug_mode=True,
    )
    await replayer.replay_workflow(history)
    await _our_replayer().replay_workflow(history)


# --- `HandleDeferredToolCalls(id=...)`: the handler is the capability's durable operation, asked in its activity ------

ASK_OPERATION_ACTIVITY = 'agent__ext_approval_id__capability__approver__ask'
OURS_BEFORE_THE_MARKER = Path(__file__).parent / 'histories' / 'ours_external_ask' / 'approval_with_id.json'
"""Ours' history of the `approval-with-id` run, approved, recorded before ours asked in the operation's activity (in
the local activity `external_event_ask`, with no marker): by the code of commit 7124d8b."""


async def _approve(client: Client, log: Path, approved: bool = True) -> None:
    """Resolve the wait of an `approval-*` run with the decision on its pending call, once its handler logged both."""
    with anyio.fail_after(60):
        while not any(line.startswith('call ') for line in (log.read_text().splitlines() if log.exists() else [])):
            await anyio.sleep(0.05)
    lines = log.read_text().splitlines()
    call_id = next(line for line in lines if line.startswith('call ')).removeprefix('call ')
    await resolve_external_event(client, _tokens(log)[0], {'approvals': {call_id: approved}})


def _activity_name(function: Any) -> str:
    """The name an activity function is registered under."""
    return getattr(function, '__temporal_activity_definition').name


async def _completed(handle: WorkflowHandle[Any, Any], activity_type: str) -> None:
    """Wait until the history shows a completed activity of `activity_type`."""
    with anyio.fail_after(60):
        while True:
            history = await handle.fetch_history()
            scheduled = {
                event.event_id
                for event in history.events
                if event.HasField('activity_task_scheduled_event_attributes')
                and event.activity_task_scheduled_event_attributes.activity_type.name == activity_type
            }
            if any(
                event.HasField('activity_task_completed_event_attributes')
                and event.activity_task_completed_event_attributes.scheduled_event_id in scheduled
                for event in history.events
            ):
                return
            await anyio.sleep(0.1)


@needs_external_events
async def test_a_history_of_ours_asking_before_the_marker_still_replays():
    # Recorded when ours asked every `ask` in the local activity: without the marker, the replay asks there again.
    history = WorkflowHistory.from_json('ours-ask-with-id', OURS_BEFORE_THE_MARKER.read_text())
    assert local_activity_names(history) == ['agent__ext_approval_id__external_event_ask']
    assert ASK_OPERATION_PATCH not in patch_markers(history)
    await _our_replayer().replay_workflow(history)


@needs_external_events
async def test_a_wait_of_the_reference_with_an_operation_ask_replays_on_ours_and_ours_on_the_reference(
    client: Client, task_queue: str, ask_log: Path
):
    _, activities = _reference_approval()
    async with _reference_worker(client, task_queue, activities):
        handle = await _start(client, task_queue, 'approval-with-id', 'signal')
        await _approve(client, ask_log)
        assert 'refunded 0' in await handle.result()
    reference_history = await handle.fetch_history()
    assert ASK_OPERATION_ACTIVITY in await activity_names(client, handle)
    assert local_activity_names(reference_history) == []
    assert ASK_OPERATION_PATCH in patch_markers(reference_history)
    await _our_replayer().replay_workflow(reference_history)

    # And ours' history of the same run, with the same commands, replays on the reference.
    ask_log.unlink()
    async with _worker(client, task_queue):
        ours = await _start(client, task_queue, 'approval-with-id', 'signal')
        await _approve(client, ask_log)
        assert 'refunded 0' in await ours.result()
    our_history = await ours.fetch_history()
    assert patch_markers(our_history) == patch_markers(reference_history)
    replayer = Replayer(
        workflows=[ReferenceExternalEventWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),
        data_converter=client.data_converter,
        debug_mode=True,
    )
    await replayer.replay_workflow(our_history)


@needs_external_events
@pytest.mark.parametrize('switch_at', ['waiting', 'asking'])
async def test_a_run_with_an_operation_ask_waiting_under_the_reference_finishes_on_ours(
    client: Client, task_queue: str, ask_log: Path, switch_at: str
):
    _, activities = _reference_approval()
    if switch_at == 'asking':
        # The reference's worker cannot run the operation's activity: its first attempt fails, and ours runs the
        # retry from the reference's input.
        activities = [a for a in activities if _activity_name(a) != ASK_OPERATION_ACTIVITY]
    async with _reference_worker(client, task_queue, activities):
        handle = await _start(client, task_queue, 'approval-with-id', 'signal')
        if switch_at == 'waiting':
            # The reference's activity recorded the handler's answer (`None`): ours reads its result.
            await _completed(handle, ASK_OPERATION_ACTIVITY)
        else:
            with anyio.fail_after(60):
                while not any(
                    event.HasField('activity_task_scheduled_event_attributes')
                    for event in (await handle.fetch_history()).events
                    if event.activity_task_scheduled_event_attributes.activity_type.name == ASK_OPERATION_ACTIVITY
                ):
                    await anyio.sleep(0.1)
    async with _worker(client, task_queue):
        await _approve(client, ask_log)
        assert 'refunded 0' in await handle.result()
    # The handler ran once: in the reference's activity, or in ours' retry of it.
    assert len(_tokens(ask_log)) == 1
    assert ASK_OPERATION_ACTIVITY in await activity_names(client, handle)
    history = await handle.fetch_history()
    scheduled = next(
        event.event_id
        for event in history.events
        if event.activity_task_scheduled_event_attributes.activity_type.name == ASK_OPERATION_ACTIVITY
    )
    started = next(
        event.activity_task_started_event_attributes
        for event in history.events
        if event.HasField('activity_task_started_event_attributes')
        and event.activity_task_started_event_attributes.scheduled_event_id == scheduled
    )
    assert (started.attempt > 1) is (switch_at == 'asking')


@needs_external_events
@pytest.mark.parametrize('switched_on', [True, False])
async def test_the_wrapper_asks_in_the_operations_activity_where_it_runs_operations_in_activities(
    client: Client, task_queue: str, ask_log: Path, switched_on: bool
):
    if switched_on:
        config = client.config()
        config['plugins'] = [PydanticAIPlugin(patches={CAPABILITY_OPERATIONS_PATCH: True})]
        client = Client(**config)
    async with _worker(client, task_queue):
        handle = await _start(client, task_queue, 'approval-wrapper-with-id', 'signal')
        await _approve(client, ask_log)
        assert 'refunded 0' in await handle.result()
    history = await handle.fetch_history()
    names = await activity_names(client, handle)
    if switched_on:
        assert 'agent__ext_approval_wrap_id__capability__approver__ask' in names
        assert local_activity_names(history) == []
        assert ASK_OPERATION_PATCH in patch_markers(history)
    else:
        # Switched off (the default), the wrapper schedules as before: the handler in the local activity, no marker.
        assert not any('__capability__' in name for name in names)
        assert local_activity_names(history) == ['agent__ext_approval_wrap_id__external_event_ask']
        assert patch_markers(history) == []
    assert len(_tokens(ask_log)) == 1
    await _our_replayer().replay_workflow(history)
