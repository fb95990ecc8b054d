"""Every scenario on every engine: the durable run must equal the plain agent's run of the same script.

Equal means: the same output (value and type), the same message history (timestamps and run ids aside), the same
usage and, for scenarios with an event stream handler, the same events in the same order.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from harness import (
    CONFORMANCE_SECRET,
    FAILING_SCENARIOS,
    FORMS,
    OVERSIZED_SCENARIO,
    SCENARIOS,
    SECRETS_SCENARIO,
    STREAM_OUT_SCENARIOS,
    DurableRunFailed,
    EngineHarness,
    Form,
    RunInput,
    RunOutcome,
    Scenario,
    comparable_events,
    describe_error,
    engine_params,
    record_events,
    run_plain,
    take_events,
)
from harness.crash_agent import CrashDeps
from harness.stream_crash_agent import (
    STREAM_CRASH_EXPECTED_OUTPUT,
    STREAM_CRASH_KILL_POINTS,
    STREAM_CRASH_PROMPT,
    stream_crash_agent,
)
from pydantic_ai import Agent
from pydantic_ai.exceptions import UsageLimitExceeded
from pydantic_ai.run import AgentRunResultEvent

from durable_kernel import HAS_RESPONSE_ORIGIN, UnitRetryEvent, is_model_stream_event

pytestmark = pytest.mark.anyio


async def _plain(scenario: Scenario, run_input: RunInput) -> tuple[RunOutcome, list[Any]]:
    # Durable engines must emit parallel tool events deterministically; the plain agent does so in this mode.
    take_events()
    with Agent.parallel_tool_call_execution_mode('parallel_ordered_events'):
        outcome = await run_plain(scenario, run_input)
    return outcome, comparable_events(take_events())


async def _durable(
    harness: EngineHarness, scenario: Scenario, run_input: RunInput, form: Form = 'wrapper'
) -> tuple[RunOutcome, list[Any]]:
    take_events()
    outcome = await harness.run(scenario, run_input, form)
    return outcome, comparable_events(take_events())


COMPLETION_ORDER: frozenset[tuple[str, Form]] = frozenset({('temporal', 'capability')})
"""Where the results of parallel tool calls reach the event handler in the order the tools finished.

Temporal's capability form schedules what pydantic-ai 2.x's `TemporalDurability` schedules, so that a workflow it
started finishes on ours: one event-handler activity per event, in the order the tool activities completed. That
order is recorded in the history, so every replay reports the same events in the same order; it is not call order.
Everywhere else the calls run in `'parallel_ordered_events'` mode (call order)."""


def _in_call_order(events: list[Any]) -> list[Any]:
    """`events` with each run of consecutive tool-result events sorted by tool call id."""
    ordered: list[Any] = []
    results: list[Any] = []
    for event in [*events, None]:
        if event is not None and event.get('event_kind') == 'function_tool_result':
            results.append(event)
            continue
        ordered += sorted(results, key=lambda result: str(result['part']['tool_call_id']))
        results = []
        if event is not None:
            ordered.append(event)
    return ordered


async def _assert_same_as_plain(harness: EngineHarness, scenario: Scenario, form: Form = 'wrapper') -> RunOutcome:
    plain, plain_events = await _plain(scenario, scenario.first)
    durable, durable_events = await _durable(harness, scenario, scenario.first, form)
    assert durable.comparable() == plain.comparable()
    if (harness.engine, form) in COMPLETION_ORDER:
        durable_events, plain_events = _in_call_order(durable_events), _in_call_order(plain_events)
    assert durable_events == plain_events
    if scenario.records_events:
        assert plain_events, 'the scenario should have produced events'
    if scenario.follow_up is not None:
        plain_next, plain_events = await _plain(scenario, scenario.follow_up(plain.messages))
        durable_next, durable_events = await _durable(harness, scenario, scenario.follow_up(durable.messages), form)
        assert durable_next.comparable() == plain_next.comparable()
        if (harness.engine, form) in COMPLETION_ORDER:
            durable_events, plain_events = _in_call_order(durable_events), _in_call_order(plain_events)
        assert durable_events == plain_events
        return durable_next
    return durable


@pytest.mark.parametrize('engine', engine_params())
@pytest.mark.parametrize('form', FORMS)
@pytest.mark.parametrize('name', list(SCENARIOS))
async def test_scenario_matches_plain_agent(harness: EngineHarness, name: str, form: Form) -> None:
    """Both forms: the engine's wrapper, and the agent with the engine's capability run in a workflow or flow."""
    await _assert_same_as_plain(harness, SCENARIOS[name], form)


@pytest.mark.parametrize('engine', engine_params())
async def test_parallel_tool_events_in_call_order(harness: EngineHarness) -> None:
    """The tools finish in another order than they were called; the events still follow the call order, every time.

    Every engine runs parallel tool calls in pydantic-ai's `parallel_ordered_events` mode inside its durable unit.
    """
    scenario = SCENARIOS['parallel_tools']
    plain, plain_events = await _plain(scenario, scenario.first)
    for _ in range(2):
        durable, durable_events = await _durable(harness, scenario, scenario.first)
        assert durable.comparable() == plain.comparable()
        assert durable_events == plain_events
    results = [event['part']['tool_call_id'] for event in plain_events if event['event_kind'] == 'function_tool_result']
    assert results == ['call-0', 'call-1', 'call-2', 'call-3']


@pytest.mark.parametrize('engine', engine_params())
@pytest.mark.parametrize('form', FORMS)
@pytest.mark.parametrize('name', list(FAILING_SCENARIOS))
async def test_failing_run_reports_the_plain_agent_error(harness: EngineHarness, name: str, form: Form) -> None:
    """The agent loop's error (here `UsageLimitExceeded`) fails the durable run with the same type and message."""
    scenario = FAILING_SCENARIOS[name]
    with pytest.raises(UsageLimitExceeded) as plain:
        await run_plain(scenario, scenario.first)
    with pytest.raises((UsageLimitExceeded, DurableRunFailed)) as durable:
        await harness.run(scenario, scenario.first, form)
    assert describe_error(durable.value) == describe_error(plain.value)


@pytest.mark.parametrize('engine', engine_params())
@pytest.mark.parametrize('form', FORMS)
async def test_secrets_scenario_matches_plain_agent_and_keeps_the_credential_out_of_storage(
    harness: EngineHarness, form: Form
) -> None:
    """Deps given through a `DepsResolver`: the run equals the plain one, and the engine stored no credential.

    The tool result (which names no credential) is found in the same storage: the search sees what the engine keeps.
    """
    outcome = await _assert_same_as_plain(harness, SECRETS_SCENARIO, form)

    assert outcome.output == 'api said: call_api=vault-user vault-ok=True'
    assert await harness.storage_holds('vault-user vault-ok=True')
    assert not await harness.storage_holds(CONFORMANCE_SECRET)


MB = 1024 * 1024

OVERSIZED_FAILS_ON: frozenset[str] = frozenset({'temporal'})
"""The engines on which a tool result over Temporal's 2 MiB payload limit fails the run.

Temporal refuses payloads over its blob size limit: durable-temporal fails the run at once, with a non-retryable
`DurablePayloadTooLarge` error naming the tool, the size and the limit (the opt-in claim check, tested in
durable-temporal's `test_payload_limits.py`, lifts it). DBOS stores step outputs as base64 pickles in a text column
(SQLite and PostgreSQL both take up to 1 GB) and Prefect persists task results to its result storage (files by
default): both complete, and their result equals the plain agent's.
"""


def _error_chain(error: BaseException) -> str:
    """The messages of `error` and its causes (a Temporal failure chains workflow, activity and application errors)."""
    found: list[str] = []
    current: BaseException | None = error
    while current is not None:
        found.append(str(current))
        current = getattr(current, 'cause', None) or current.__cause__
    return '\n'.join(found)


@pytest.mark.parametrize('engine', engine_params())
@pytest.mark.parametrize('form', FORMS)
@pytest.mark.parametrize('size', [3 * MB, 50 * MB], ids=['3MB', '50MB'])
async def test_oversized_tool_result(harness: EngineHarness, size: int, form: Form) -> None:
    """A 3 MB or 50 MB tool result: a clear, immediate failure on Temporal; the plain agent's result elsewhere."""
    run_input = RunInput(f'Produce {size}')
    if harness.engine in OVERSIZED_FAILS_ON:
        started = time.monotonic()
        with pytest.raises(Exception) as failure:  # noqa: PT011  # Temporal's failure chain, inspected below
            await harness.run(OVERSIZED_SCENARIO, run_input, form)
        # Generous (it fails in about a second): without the check the run never ended.
        assert time.monotonic() - started < 30
        message = _error_chain(failure.value)
        assert "The result of tool 'produce'" in message
        assert f'{size / MB:.1f} MiB' in message
        assert 'payload size limit of 2.0 MiB' in message
        assert 'claim_check=' in message
        return
    plain = await run_plain(OVERSIZED_SCENARIO, run_input)
    durable = await harness.run(OVERSIZED_SCENARIO, run_input, form)
    assert durable.output == plain.output == f'received {size} characters'
    assert durable.comparable() == plain.comparable()


@pytest.mark.parametrize('engine', engine_params())
@pytest.mark.parametrize('reconnect_after', [None, 3], ids=['one_consumer', 'reconnect'])
@pytest.mark.parametrize('name', list(STREAM_OUT_SCENARIOS))
async def test_stream_out_consumer_sees_what_the_handler_sees(
    harness: EngineHarness, name: str, reconnect_after: int | None
) -> None:
    """A consumer outside the run (`stream_agent_events`) reads the events the run's handler sees, in order.

    The handler runs in the engine's units; the consumer reads the engine's channel (Temporal: the workflow's stream;
    DBOS: the workflow stream in the system database; Prefect: the flow run's artifacts) while the run executes. A
    consumer that stops after 3 events and reconnects from the next offset gets the same events, exactly once.
    """
    scenario = STREAM_OUT_SCENARIOS[name]
    plain, plain_events = await _plain(scenario, scenario.first)
    take_events()
    durable, consumed = await harness.stream_out(scenario, scenario.first, reconnect_after)
    handled = comparable_events(take_events())
    assert durable.comparable() == plain.comparable()
    assert handled == plain_events
    assert comparable_events(consumed) == plain_events


def _as_first_executions(events: list[Any]) -> list[Any]:
    """The events with their origin's `execution_attempt` (pydantic-ai 2.78+) set back to 1, as the plain agent's.

    A unit the engine ran again streams its events under its own execution attempt; the plain agent ran everything
    once.
    """
    return [
        dataclasses.replace(event, origin=dataclasses.replace(event.origin, execution_attempt=1))
        if getattr(event, 'origin', None) is not None
        else event
        for event in events
    ]


def _without_run_steps(dumped: Any) -> Any:
    """Dumped events with their origin's `run_step` left out (a Temporal hand-over starts a new agent run)."""
    return [
        {**event, 'origin': {**event['origin'], 'run_step': '<per run>'}} if event.get('origin') else event
        for event in dumped
    ]


def _as_a_page_shows_it(events: list[Any]) -> list[Any]:
    """What a consumer shows: on a `UnitRetryEvent` it drops the partial model response it showed, as documented."""
    shown: list[Any] = []
    for event in events:
        if isinstance(event, UnitRetryEvent):
            while shown and is_model_stream_event(shown[-1]):
                shown.pop()
        else:
            shown.append(event)
    return shown


@pytest.fixture
def stream_crash_runner(engine: str, request: pytest.FixtureRequest) -> Any:
    """The crash suite's zygote for `engine`, and the engine's client (resolved here: an async test cannot)."""
    from harness.stream_out_crash import stream_out_zygote

    prefect_home = request.getfixturevalue('prefect_home') if engine == 'prefect' else None
    client = request.getfixturevalue('temporal_harness').client if engine == 'temporal' else None
    return stream_out_zygote(engine, prefect_home), client


@pytest.mark.parametrize('engine', engine_params())
@pytest.mark.parametrize('kill_point', list(STREAM_CRASH_KILL_POINTS))
async def test_stream_out_killed_worker_gives_consumers_a_complete_ordered_stream(
    engine: str, kill_point: str, stream_crash_runner: Any, tmp_path: Path
) -> None:
    """SIGKILL the worker mid model stream or mid tool; a new worker finishes the run; the consumers see it all.

    One consumer was subscribed before the kill and reads through it; another stopped inside the first model
    request's first attempt and reconnects from its last offset after the kill. Each receives every event once, in
    order, except the events of the unit the kill interrupted: those repeat after a `UnitRetryEvent`. Dropping the
    partial response at the marker gives the plain agent's events exactly; units completed before the crash are
    never repeated (no marker for them, their calls ran once).
    """
    from harness.stream_out_crash import RECONNECT_AFTER, stream_out_crash

    if engine == 'temporal':
        from harness.temporal_engine import HAS_WORKFLOW_STREAMS

        if not HAS_WORKFLOW_STREAMS:
            pytest.skip('temporalio < 1.27.0 has no Workflow Streams, which live events on Temporal need')
    take_events()
    with Agent.parallel_tool_call_execution_mode('parallel_ordered_events'):
        plain = await stream_crash_agent.run(STREAM_CRASH_PROMPT, deps=CrashDeps(), event_stream_handler=record_events)
    plain_events = comparable_events(take_events())
    assert plain.output == STREAM_CRASH_EXPECTED_OUTPUT

    zygote_context, client = stream_crash_runner
    async with zygote_context as zygote:
        crash = await stream_out_crash(
            engine, zygote, STREAM_CRASH_KILL_POINTS[kill_point], tmp_path, temporal_client=client
        )

    assert crash.killed
    assert crash.output == STREAM_CRASH_EXPECTED_OUTPUT
    starts = Counter(call.label for call in crash.calls if call.kind == 'start')
    for consumer in (crash.live, crash.reconnecting):
        offsets = [offset for offset, _ in consumer]
        assert offsets == sorted(set(offsets)), 'every offset once, in order'
        events = [event for _, event in consumer]
        terminal = events[-1]
        assert isinstance(terminal, AgentRunResultEvent)
        assert cast('AgentRunResultEvent[str]', terminal).result.output == STREAM_CRASH_EXPECTED_OUTPUT
        shown = _as_a_page_shows_it(events[:-1])
        if HAS_RESPONSE_ORIGIN and engine == 'temporal' and kill_point == 'mid_model_stream':
            # The retried activity's events say which execution they are: their origin supersedes the dead one's.
            # DBOS and Prefect count the engine's retries of the unit, not its re-run after a crash (as pydantic-ai's
            # own DBOS and Prefect do): there the `UnitRetryEvent` tells a consumer.
            dead = next(event for event in events if is_model_stream_event(event))
            again = [e for e in shown if is_model_stream_event(e) and e.origin.run_step == dead.origin.run_step]
            assert again
            assert all(e.origin.supersedes(dead.origin) for e in again)
        assert comparable_events(_as_first_executions(shown)) == plain_events
        retries = [event for event in events if isinstance(event, UnitRetryEvent)]
        assert all(retry.unit == 'model_request' and retry.attempt >= 2 for retry in retries), retries
        if kill_point == 'mid_tool':
            # The model request completed before the crash: its events once, no marker; the tool ran again.
            assert not retries
            assert starts == {'model-1': 1, 'call-a': 2, 'model-2': 1}
        else:
            assert retries
            assert starts == {'model-1': 2, 'call-a': 1, 'model-2': 1}
    if kill_point == 'mid_model_stream':
        # The reconnecting consumer stopped inside the dead attempt: the retry is announced after its offset too.
        assert len(crash.reconnecting[:RECONNECT_AFTER]) == RECONNECT_AFTER
        assert any(isinstance(event, UnitRetryEvent) for _, event in crash.reconnecting[RECONNECT_AFTER:])


@pytest.mark.parametrize('engine', [pytest.param('temporal', id='temporal', marks=pytest.mark.xdist_group('temporal'))])
@pytest.mark.parametrize('form', ['wrapper', 'capability'])
async def test_continue_as_new_conversation_streams_across_hand_overs(harness: EngineHarness, form: str) -> None:
    """Temporal only (the other engines have no continue-as-new): a conversation continues as new twice.

    Live events are consumed across both hand-overs, by a consumer subscribed from the start and by one that stops
    in the first run and reconnects from its offset in a later one: both receive the plain agent's events, in order,
    once each; the output and usage are the plain run's; no model request or tool call ran twice.
    """
    import anyio
    from harness.temporal_engine import HAS_WORKFLOW_STREAMS

    if not HAS_WORKFLOW_STREAMS:  # before the harness module, whose agents are built with a topic
        pytest.skip('temporalio < 1.27.0 has no Workflow Streams, which live events on Temporal need')
    from harness.temporal_continue_as_new import (
        CALLS,
        CAN_EXPECTED_OUTPUT,
        CAN_FORMS,
        CAN_PROMPT,
        CAN_TURNS,
        CanInput,
        can_plain_agent,
    )
    from harness.temporal_engine import harness_passthrough_runner

    from durable_temporal import AgentPlugin, TemporalDurability
    from durable_temporal.testing import agent_worker

    client = cast('Any', harness).client  # the Temporal harness's client (the sync `harness` fixture resolved it)
    take_events()
    plain = await can_plain_agent.run(CAN_PROMPT, event_stream_handler=record_events)
    plain_events = comparable_events(take_events())
    assert plain.output == CAN_EXPECTED_OUTPUT
    CALLS.clear()

    workflow_cls, agent = CAN_FORMS[form]
    reader = agent if form == 'wrapper' else TemporalDurability.from_agent(agent)
    workflow_id = f'conformance-can-{form}-{uuid.uuid4().hex}'
    stop_after = 3  # inside the first run (it holds two model requests and a tool call)
    async with agent_worker(
        client, workflows=[workflow_cls], plugins=[AgentPlugin(agent)], workflow_runner=harness_passthrough_runner()
    ) as worker:
        handle = await client.start_workflow(
            f'conformance_can_{form}',
            CanInput(CAN_PROMPT),
            result_type=str,
            id=workflow_id,
            task_queue=worker.task_queue,
            execution_timeout=timedelta(minutes=3),
        )

        def open_events(offset: int) -> Any:
            return reader.stream_agent_events(
                client, handle, output_type=str, from_offset=offset, poll_cooldown=timedelta(milliseconds=50)
            )

        live: list[tuple[int, Any]] = []
        reconnecting: list[tuple[int, Any]] = []

        async def read(into: list[tuple[int, Any]], from_offset: int = 0, stop: int | None = None) -> None:
            async with open_events(from_offset) as events:
                async for event in events:
                    into.append((events.offset, event))
                    if stop is not None and len(into) == stop:
                        return

        with anyio.fail_after(180):
            async with anyio.create_task_group() as group:
                group.start_soon(read, live)
                await read(reconnecting, stop=stop_after)
                # Reconnect once the conversation has moved on to a later run (the third turn's call is in it).
                while not any(getattr(e, 'tool_call_id', None) == 'call-2' for _, e in live):
                    await anyio.sleep(0.02)
                await read(reconnecting, from_offset=reconnecting[-1][0] + 1)
            output = await handle.result()
        runs = 0
        for _ in range(100):  # visibility catches up with the runs a little later
            runs = len([execution async for execution in client.list_workflows(f'WorkflowId = "{workflow_id}"')])
            if runs >= 3:
                break
            await anyio.sleep(0.1)

    assert output == f'{CAN_EXPECTED_OUTPUT} ({CAN_TURNS + 1} requests)'
    assert runs >= 3, 'the conversation should have continued as new at least twice'
    for consumer in (live, reconnecting):
        offsets = [offset for offset, _ in consumer]
        assert offsets == sorted(set(offsets))
        events = [event for _, event in consumer]
        assert isinstance(events[-1], AgentRunResultEvent)
        assert cast('AgentRunResultEvent[str]', events[-1]).result.output == CAN_EXPECTED_OUTPUT
        if HAS_RESPONSE_ORIGIN:
            # Each hand-over continues the conversation in a new agent run: its events' origin names that run, whose
            # run steps count from 1 again (the plain agent's one run counts on).
            run_steps: dict[str, list[int]] = {}
            for event in events[:-1]:
                if getattr(event, 'origin', None) is not None:
                    run_steps.setdefault(event.origin.run_id, []).append(event.origin.run_step)
            assert len(run_steps) >= 3
            assert all(steps[0] == 1 and steps == sorted(steps) for steps in run_steps.values()), run_steps
        assert _without_run_steps(comparable_events(events[:-1])) == _without_run_steps(plain_events)
    expected_calls = {f'model-{n}': 1 for n in range(CAN_TURNS + 1)} | {f'tool-{n}': 1 for n in range(CAN_TURNS)}
    assert dict(CALLS) == expected_calls
