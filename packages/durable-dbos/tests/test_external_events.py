"""pydantic-ai 2.78's external events in a DBOS workflow: `ask` in a step, `DBOS.recv` waits, both forms, recovery."""

from __future__ import annotations

import asyncio
import functools
import subprocess
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import pytest
from dbos import DBOS, DBOSClient, SetWorkflowID
from pydantic_ai.exceptions import UserError

from durable_dbos import fail_external_event, resolve_external_event
from durable_dbos.testing import dbos_session
from durable_kernel import HAS_EXTERNAL_EVENTS

from .conftest import both_backends
from .external_event_app import WAIT_TIMEOUT, build, build_approval

pytestmark = pytest.mark.anyio

needs_external_events = pytest.mark.skipif(
    not HAS_EXTERNAL_EVENTS, reason='external events (`pydantic_ai.external_events`) exist from pydantic-ai 2.78'
)

FORMS = ['capability', 'wrapper']
APP = Path(__file__).with_name('external_event_app.py')


@pytest.fixture
def ask_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file `ask` logs its tokens to."""
    log = tmp_path / 'asks.log'
    monkeypatch.setenv('DURABLE_EXTERNAL_EVENT_LOG', str(log))
    return log


def _tokens(log: Path) -> list[str]:
    if not log.exists():
        return []
    return [line.removeprefix('ask ') for line in log.read_text().splitlines() if line.startswith('ask ')]


async def _token(log: Path) -> str:
    with anyio.fail_after(60):
        while not _tokens(log):
            await anyio.sleep(0.05)
    return _tokens(log)[0]


async def _steps(workflow_id: str) -> list[str]:
    return [step['function_name'] for step in await DBOS.list_workflow_steps_async(workflow_id)]


@needs_external_events
@pytest.mark.parametrize('form', FORMS)
async def test_a_wait_ends_with_the_payload_its_token_is_resolved_with(
    agent_name: str, dbos_launch: Callable[[], None], ask_log: Path, form: str
) -> None:
    waits = build(agent_name, form)
    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        handle = await DBOS.start_workflow_async(waits, 'signal')
    token = await _token(ask_log)
    await resolve_external_event(token, {'approved': True})
    assert await handle.get_result() == "approval: {'approved': True}"
    assert _tokens(ask_log) == [token]
    # The capability form waits in this workflow; the wrapper form's run is its child workflow, named in the token.
    waiting_id = token.rpartition(':')[0]
    assert (waiting_id == workflow_id) is (form == 'capability')
    steps = await _steps(waiting_id)
    assert f'{agent_name}__external_event.approval.ask' in steps
    assert 'DBOS.recv' in steps


@needs_external_events
async def test_a_failed_token_ends_the_wait_with_its_reason(
    agent_name: str, dbos_launch: Callable[[], None], ask_log: Path
) -> None:
    waits = build(agent_name, 'capability')
    dbos_launch()
    handle = await DBOS.start_workflow_async(waits, 'signal')
    await fail_external_event(await _token(ask_log), 'denied by ops')
    assert await handle.get_result() == 'no approval: denied by ops'


@needs_external_events
async def test_an_answer_from_ask_ends_the_wait_without_a_message(
    agent_name: str, dbos_launch: Callable[[], None], ask_log: Path
) -> None:
    waits = build(agent_name, 'wrapper')
    dbos_launch()
    assert await waits('answer') == 'approval: answered by ask'
    assert len(_tokens(ask_log)) == 1


@needs_external_events
async def test_a_wait_times_out(agent_name: str, dbos_launch: Callable[[], None], ask_log: Path) -> None:
    waits = build(agent_name, 'capability')
    dbos_launch()
    assert await waits('timeout') == f'no approval: No resolution arrived within {WAIT_TIMEOUT}.'


@needs_external_events
@pytest.mark.parametrize('approved', [True, False])
async def test_handle_deferred_tool_calls_waits_for_the_decision(
    agent_name: str, dbos_launch: Callable[[], None], ask_log: Path, approved: bool
) -> None:
    refunds = build_approval(agent_name)
    dbos_launch()
    handle = await DBOS.start_workflow_async(refunds)
    token = await _token(ask_log)
    call_id = next(line for line in ask_log.read_text().splitlines() if line.startswith('call ')).removeprefix('call ')
    # The JSON form of `DeferredToolResults`, as an approval UI would post it.
    await resolve_external_event(token, {'approvals': {call_id: approved}})
    assert ('refunded 0' in await handle.get_result()) is approved


@needs_external_events
@both_backends
def test_a_wait_survives_a_crash_and_ask_is_not_called_again(database_url: str, ask_log: Path, backend: str) -> None:
    name = f'ext_crash_{uuid.uuid4().hex[:6]}'
    workflow_id = str(uuid.uuid4())
    crashed = subprocess.run(
        [sys.executable, str(APP), database_url, str(ask_log), name, workflow_id],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == 17, crashed.stderr
    [token] = _tokens(ask_log)
    # Resolved while no process runs the workflow, through a client of its system database: the message waits.
    client = DBOSClient(system_database_url=database_url)
    try:
        # In a thread of its own: this test is sync (DBOS recovers below), and another test's loop may run in this one.
        resolve = functools.partial(resolve_external_event, token, 'approved after the crash', client=client)
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, resolve()).result()
    finally:
        client.destroy()
    with dbos_session(database_url, reset=False) as launch:
        build(name, 'capability')
        launch()  # recovers the pending workflow
        assert DBOS.retrieve_workflow(workflow_id).get_result() == 'approval: approved after the crash'
    # Recovery replayed the recorded `ask` step: no second token was handed out.
    assert _tokens(ask_log) == [token]


async def test_a_token_not_handed_out_by_a_workflow_wait_is_refused() -> None:
    with pytest.raises(UserError, match='not handed out by a wait for an external event in a DBOS run'):
        await resolve_external_event('not-a-token', 'x')
    with pytest.raises(UserError, match='JSON-serializable'):
        await resolve_external_event(f'wf:{uuid.uuid4().hex}', object())
