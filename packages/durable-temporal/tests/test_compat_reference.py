"""Wire compatibility with the reference integration (`pydantic_ai.durable_exec.temporal`).

A user must be able to swap the import without draining running workflows: a history recorded by the reference
replays on a worker using `durable_temporal`, and the reverse, and a run the reference started finishes on ours.
`histories/record.py` records `histories/{reference,ours}/*.json` from `histories/scenarios.py`; the apps
`histories/reference_app.py` and `histories/ours_app.py` wrap the same agents under the same names.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from core_helpers import TOOL_ACTIVITY_BEFORE_HANDLER_EVENT, import_reference_app, skip_without_reference
from histories import ours_app
from histories.scenarios import SCENARIOS
from histories.schedule import ScheduledActivity, activity_schedule
from temporalio.client import Client, WorkflowHistory
from temporalio.client import Plugin as ClientPlugin
from temporalio.worker import Replayer, Worker

from durable_kernel import PYDANTIC_AI_2
from durable_temporal._config import NON_RETRYABLE_ERROR_TYPES

pytestmark = pytest.mark.anyio

reference_app: Any = import_reference_app()
"""`None` where the reference does not import (pydantic-ai 2.33 with temporalio >= 1.34): its tests skip, ours run."""

HISTORIES = Path(__file__).parent / 'histories'
RECORDED = (*SCENARIOS, 'swap')
"""Every recorded history: one per scenario, and `swap` (two runs of the `tools` agent with a signal between)."""
HANDLER_SCENARIOS = ('stream', 'stream_output')
"""The scenarios with an event stream handler: ours hands the tool events to it in batches, the reference one by one."""
OURS_0_1 = 'ours_0.1'
"""Histories recorded by durable-temporal 0.1, before message deltas and event batches: they schedule exactly what the
reference does, and must keep replaying on ours (and on the reference, for a rollback)."""
DELTA_FIELDS = ('history_index', 'history_base', 'history_keep', 'history_digest')
# Sent by releases with continue-as-new (the earlier run a delta names); absent from the recorded histories.
HANDOVER_FIELDS = ('history_run_id',)
# Sent by releases with pydantic-ai 2.78's event origin (the attempt at the request step); absent from the reference's.
ORIGIN_FIELDS = ('attempt',)

REFERENCE_1_ONLY = pytest.mark.skipif(
    PYDANTIC_AI_2,
    reason='about the reference as of pydantic-ai 1.107, which recorded `reference/`: 2.x rewrote the reference '
    '`TemporalAgent` (other activity arguments and results) and deprecated it',
)
"""Tests whose subject is the 1.107 reference's own wire format. Ours on 2.x still replays and continues what the 1.107
reference (and ours on 1.107) recorded: those tests run on both lines."""


def _history_json(impl: str, name: str) -> str:
    return (HISTORIES / impl / f'{name}.json').read_text()


def _history(impl: str, name: str) -> WorkflowHistory:
    return WorkflowHistory.from_json(f'compat-{name}', _history_json(impl, name))


def _client_with(client: Client, plugins: Sequence[ClientPlugin]) -> Client:
    config = client.config()
    config['plugins'] = list(plugins)
    return Client(**config)


def _reference_replayer() -> Replayer:
    skip_without_reference()
    return Replayer(
        workflows=[reference_app.CompatScenarioWorkflow, reference_app.CompatSwapWorkflow],
        plugins=[reference_app.PydanticAIPlugin()],
        debug_mode=True,  # no deadlock detector: on a loaded CI machine a first activation can take over 2 s
    )


def _our_replayer() -> Replayer:
    return Replayer(
        workflows=[ours_app.CompatScenarioWorkflow, ours_app.CompatSwapWorkflow],
        plugins=[ours_app.PydanticAIPlugin()],
        debug_mode=True,
    )


@pytest.mark.parametrize('name', RECORDED)
async def test_reference_history_replays_on_ours(name: str):
    """A workflow the reference ran (or started) continues on a `durable_temporal` worker."""
    await _our_replayer().replay_workflow(_history('reference', name))


@pytest.mark.parametrize('name', RECORDED)
async def test_our_history_replays_on_ours(name: str):
    """Ours replays what ours recorded, today's histories and those of durable-temporal 0.1."""
    if name == 'stream' and TOOL_ACTIVITY_BEFORE_HANDLER_EVENT:
        # Recorded on 1.107: pydantic-ai 2.33 schedules the tool's activity before the handler's (drain first).
        with pytest.raises(Exception, match='[Nn]ondeterminism'):
            await _our_replayer().replay_workflow(_history('ours', name), raise_on_replay_failure=True)
        return
    await _our_replayer().replay_workflow(_history('ours', name))
    await _our_replayer().replay_workflow(_history(OURS_0_1, name))


def _reference_1_only(names: Sequence[str], *only: str) -> list[Any]:
    """`names` as parameters, those in `only` (all when empty) marked `REFERENCE_1_ONLY`."""
    return [pytest.param(name, marks=REFERENCE_1_ONLY) if not only or name in only else name for name in names]


# The 2.x reference cannot decode the dynamic-toolset results recorded on 1.107 (its `DynamicToolsResult` changed).
@pytest.mark.parametrize('name', _reference_1_only(RECORDED, 'dynamic'))
async def test_our_0_1_history_replays_on_the_reference(name: str):
    """Rolling back to the reference does not break workflows that durable-temporal 0.1 ran."""
    await _reference_replayer().replay_workflow(_history(OURS_0_1, name))


@pytest.mark.parametrize(
    'name', _reference_1_only([name for name in RECORDED if name not in HANDLER_SCENARIOS], 'dynamic')
)
async def test_our_history_without_event_handler_replays_on_the_reference(name: str):
    """Rolling back to the reference replays today's workflows too, except those with an event handler (batched)."""
    await _reference_replayer().replay_workflow(_history('ours', name))


@pytest.mark.parametrize('name', RECORDED)
def test_recorded_0_1_schedules_are_identical(name: str):
    """0.1 scheduled the same activities, summaries, argument shapes, timeouts and non-retryable errors."""
    assert activity_schedule(_history_json(OURS_0_1, name)) == activity_schedule(_history_json('reference', name))


def _without_event_batches(schedule: list[ScheduledActivity]) -> list[ScheduledActivity]:
    """The schedule with the event-handler activities left out and the message-delta fields of model requests."""
    return [
        dataclasses.replace(
            activity,
            argument_keys=tuple(
                key for key in activity.argument_keys if key not in DELTA_FIELDS + HANDOVER_FIELDS + ORIGIN_FIELDS
            ),
        )
        for activity in schedule
        if not activity.activity_type.endswith('__event_stream_handler')
    ]


def _handler_activities(schedule: list[ScheduledActivity]) -> int:
    return sum(activity.activity_type.endswith('__event_stream_handler') for activity in schedule)


@pytest.mark.parametrize('name', RECORDED)
def test_recorded_schedules_match_but_for_event_batches_and_deltas(name: str):
    """Today: the same schedule as the reference, except that model requests carry a message delta (4 more fields)
    and the event handler gets the tool events in fewer activities."""
    ours, reference = (
        activity_schedule(_history_json('ours', name)),
        activity_schedule(_history_json('reference', name)),
    )
    assert _without_event_batches(ours) == _without_event_batches(reference)
    if name in HANDLER_SCENARIOS:
        # One tool call per response here: its call and result events cannot share an activity (see
        # test_parallel_tools for two calls, whose 4 events take 2 activities).
        assert 0 < _handler_activities(ours) <= _handler_activities(reference)
    else:
        assert _handler_activities(ours) == _handler_activities(reference) == 0
    model_requests = [activity for activity in ours if '__model_request' in activity.activity_type]
    assert model_requests
    assert all(set(DELTA_FIELDS) <= set(activity.argument_keys) for activity in model_requests)


async def _live_schedules(
    client: Client, workflow: type, workflow_run: Callable[[Any, str], Awaitable[str]], task_queue: str
) -> dict[str, list[ScheduledActivity]]:
    """Run every scenario on one worker (concurrently) and read back what each scheduled."""
    async with Worker(client, task_queue=task_queue, workflows=[workflow]):
        handles = {
            scenario: await client.start_workflow(
                workflow_run, scenario, id=f'compat-{scenario}-{uuid.uuid4()}', task_queue=task_queue
            )
            for scenario in SCENARIOS
        }
        schedules: dict[str, list[ScheduledActivity]] = {}
        for scenario, handle in handles.items():
            await handle.result()
            schedules[scenario] = activity_schedule((await handle.fetch_history()).to_json())
    return schedules


def _recorded_schedules(impl: str) -> dict[str, list[ScheduledActivity]]:
    return {scenario: activity_schedule(_history_json(impl, scenario)) for scenario in SCENARIOS}


async def test_ours_schedules_what_the_reference_recorded(client: Client, task_queue: str):
    """Live, with today's code: our schedules equal our committed ones (catches stale `ours/` files)."""
    live = await _live_schedules(
        client, ours_app.CompatScenarioWorkflow, ours_app.CompatScenarioWorkflow.run, task_queue
    )
    recorded = _recorded_schedules('ours')
    if PYDANTIC_AI_2:
        # Recorded on 1.107; on 2.x every retry policy also lists the non-retryable errors 2.x adds (a retry policy
        # is not part of what replay checks).
        recorded = {
            scenario: [
                dataclasses.replace(activity, non_retryable_error_types=NON_RETRYABLE_ERROR_TYPES)
                for activity in schedule
            ]
            for scenario, schedule in recorded.items()
        }
    if TOOL_ACTIVITY_BEFORE_HANDLER_EVENT:
        # pydantic-ai 2.33 schedules the tool's activity before the handler's: the same activities, in another order.
        live_stream, recorded_stream = live.pop('stream'), recorded.pop('stream')
        assert live_stream != recorded_stream
        assert sorted(map(repr, live_stream)) == sorted(map(repr, recorded_stream))
    assert live == recorded


@REFERENCE_1_ONLY
async def test_reference_still_schedules_what_was_recorded(client: Client, task_queue: str):
    """Live, with today's pydantic-ai: the reference's committed histories are not stale."""
    skip_without_reference()
    reference_client = _client_with(client, [reference_app.PydanticAIPlugin()])
    live = await _live_schedules(
        reference_client, reference_app.CompatScenarioWorkflow, reference_app.CompatScenarioWorkflow.run, task_queue
    )
    assert live == _recorded_schedules('reference')


@pytest.mark.parametrize('first_impl', ['reference', 'ours'])
async def test_a_run_started_by_one_finishes_on_the_other(client: Client, task_queue: str, first_impl: str):
    """Swap the import mid-workflow: one worker runs the first agent run, the other replays it and runs the second."""
    skip_without_reference()
    first_app, second_app = (reference_app, ours_app) if first_impl == 'reference' else (ours_app, reference_app)
    first_client = _client_with(client, [first_app.PydanticAIPlugin()])
    second_client = _client_with(client, [second_app.PydanticAIPlugin()])
    workflow_id = f'compat-swap-{uuid.uuid4()}'

    async with Worker(
        first_client,
        task_queue=task_queue,
        workflows=[first_app.CompatScenarioWorkflow, first_app.CompatSwapWorkflow],
        # No sticky queue: the time-skipping server would keep routing the workflow to this stopped worker.
        max_cached_workflows=0,
    ):
        handle = await first_client.start_workflow(
            first_app.CompatSwapWorkflow.run, id=workflow_id, task_queue=task_queue
        )
        with anyio.fail_after(30):
            while await handle.query(first_app.CompatSwapWorkflow.first) is None:
                await anyio.sleep(0.05)

    async with Worker(
        second_client,
        task_queue=task_queue,
        workflows=[second_app.CompatScenarioWorkflow, second_app.CompatSwapWorkflow],
    ):
        second_handle = client.get_workflow_handle_for(second_app.CompatSwapWorkflow.run, workflow_id)
        await second_handle.signal(second_app.CompatSwapWorkflow.resume)
        with anyio.fail_after(30):
            outputs = await second_handle.result()

    expected = '{"get_weather":"sunny in a (celsius, for ann)","get_time":"12:00"}'
    assert outputs == [expected, expected]
    history = await second_handle.fetch_history()
    schedule = _without_event_batches(activity_schedule(history.to_json()))
    recorded = _without_event_batches(activity_schedule(_history_json('reference', 'swap')))
    if PYDANTIC_AI_2:
        # The 2.x reference sends other arguments and lists other non-retryable errors than the 1.107 one recorded:
        # the same activities, with the same summaries and timeouts, is what both implementations must agree on.
        def comparable(activity: ScheduledActivity) -> tuple[str, str | None, str | None]:
            return activity.activity_type, activity.summary, activity.start_to_close_timeout

        assert [comparable(a) for a in schedule] == [comparable(a) for a in recorded]
    else:
        assert schedule == recorded
