"""Patch switches (`PydanticAIPlugin(patches=...)`): a fleet can deploy a release with its new behaviours off.

Switched off, new executions schedule what the previous release (and the reference) scheduled and record no marker:
their histories replay on the reference, so a rollback needs no draining. A history that carries a marker replays
whatever the switches say, and a workflow started with a behaviour on keeps it when a worker with the switch off
continues it (the first decision holds for the whole run).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from core_helpers import TOOL_ACTIVITY_BEFORE_HANDLER_EVENT, import_reference_app, skip_without_reference
from histories import ours_app
from histories.versioning_app import OurWorkflow, ReferenceWorkflow, TwoRunsWorkflow
from pydantic_ai.exceptions import UserError
from temporalio.client import Client, WorkflowHistory
from temporalio.client import Plugin as ClientPlugin
from temporalio.worker import Replayer, Worker

from durable_kernel import PYDANTIC_AI_2
from durable_temporal import PydanticAIPlugin

pytestmark = pytest.mark.anyio

reference_app: Any = import_reference_app()
"""`None` where the reference does not import (pydantic-ai 2.33 with temporalio >= 1.34): its tests skip, ours run."""

OUR_PATCHES: tuple[str, ...] = (
    'durable_temporal.event_batches',
    'durable_temporal.parallel_ordered_events',
    'durable_temporal.dynamic_toolset_per_run',
)
ALL_OFF: dict[str, bool] = dict.fromkeys(OUR_PATCHES, False)
HANDLER_SCENARIOS = ('stream', 'stream_output')
HISTORIES = Path(__file__).parent / 'histories'


def _client_with(client: Client, plugins: Sequence[ClientPlugin]) -> Client:
    config = client.config()
    config['plugins'] = list(plugins)
    return Client(**config)


def _markers(history: WorkflowHistory) -> list[str]:
    """The patch ids of the markers a history recorded, in order."""
    found: list[str] = []
    for event in history.events:
        if not event.HasField('marker_recorded_event_attributes'):
            continue
        attributes = event.marker_recorded_event_attributes
        if attributes.marker_name == 'core_patch':
            found.append(json.loads(attributes.details['patch-data'].payloads[0].data)['id'])
    return found


def _handler_activities(history: WorkflowHistory) -> int:
    return sum(
        event.activity_task_scheduled_event_attributes.activity_type.name.endswith('__event_stream_handler')
        for event in history.events
        if event.HasField('activity_task_scheduled_event_attributes')
    )


def _our_replayer(patches: Mapping[str, bool] | None = None, workflows: Sequence[type] = ()) -> Replayer:
    return Replayer(
        workflows=[*workflows, ours_app.CompatScenarioWorkflow],
        plugins=[PydanticAIPlugin(patches=patches)],
        debug_mode=True,  # no deadlock detector: on a loaded CI machine a first activation can take over 2 s
    )


async def _record(client: Client, task_queue: str, workflow_run: Any, arg: Any, patches: Mapping[str, bool]) -> Any:
    our_client = _client_with(client, [PydanticAIPlugin(patches=patches)])
    async with Worker(our_client, task_queue=task_queue, workflows=[OurWorkflow, ours_app.CompatScenarioWorkflow]):
        handle = await our_client.start_workflow(
            workflow_run, arg, id=f'versioning-{uuid.uuid4()}', task_queue=task_queue
        )
        with anyio.fail_after(60):
            await handle.result()
        return await handle.fetch_history()


@pytest.mark.parametrize('scenario', HANDLER_SCENARIOS)
async def test_handler_history_recorded_with_batches_off_replays_on_the_reference(
    client: Client, task_queue: str, scenario: str
):
    """Issue 16 (6): an agent with an event handler, recorded with `event_batches` off, rolls back to the reference."""
    skip_without_reference()
    history = await _record(
        client, task_queue, ours_app.CompatScenarioWorkflow.run, scenario, {'durable_temporal.event_batches': False}
    )
    assert _markers(history) == []
    reference = Replayer(
        workflows=[reference_app.CompatScenarioWorkflow], plugins=[reference_app.PydanticAIPlugin()], debug_mode=True
    )
    await reference.replay_workflow(history)
    # Ours replays it with the switch on as well as off: the history decides.
    await _our_replayer().replay_workflow(history)
    await _our_replayer(ALL_OFF).replay_workflow(history)


async def test_every_behaviour_off_schedules_what_the_reference_does(client: Client, task_queue: str):
    """All three switches off: parallel calls with a handler and a once-per-run toolset replay on the reference."""
    off = await _record(client, task_queue, OurWorkflow.run, 'go', ALL_OFF)
    on = await _record(client, task_queue, OurWorkflow.run, 'go', {})
    assert _markers(off) == []
    assert sorted(_markers(on)) == sorted(OUR_PATCHES)
    # Off: one handler activity per event, as the reference; on: fewer (batches).
    assert _handler_activities(on) < _handler_activities(off)
    if not PYDANTIC_AI_2:
        reference = Replayer(workflows=[ReferenceWorkflow], plugins=[reference_app.PydanticAIPlugin()], debug_mode=True)
        # The 2.x reference cannot decode the dynamic-toolset listing of 1.107's wire format (nor ours).
        await reference.replay_workflow(off)
        with pytest.raises(Exception, match='[Nn]ondeterminism'):
            await reference.replay_workflow(on, raise_on_replay_failure=True)
    for patches in (None, ALL_OFF):
        await _our_replayer(patches, [OurWorkflow]).replay_workflow(off)
        await _our_replayer(patches, [OurWorkflow]).replay_workflow(on)


@pytest.mark.parametrize('scenario', [*HANDLER_SCENARIOS, 'dynamic', 'tools'])
async def test_histories_with_markers_replay_with_the_switches_off(scenario: str):
    """Turning a switch off again (a rollback of the configuration) keeps replaying what was recorded with it on."""
    history = WorkflowHistory.from_json(scenario, (HISTORIES / 'ours' / f'{scenario}.json').read_text())
    if scenario == 'stream' and TOOL_ACTIVITY_BEFORE_HANDLER_EVENT:
        # Recorded on 1.107: pydantic-ai 2.33 schedules the tool's activity before the handler's (drain first).
        with pytest.raises(Exception, match='[Nn]ondeterminism'):
            await _our_replayer(ALL_OFF).replay_workflow(history, raise_on_replay_failure=True)
        return
    await _our_replayer(ALL_OFF).replay_workflow(history)


@pytest.mark.parametrize('first', ['on', 'off'])
async def test_a_workflow_keeps_its_first_decision_when_the_switch_flips(client: Client, task_queue: str, first: str):
    """A worker with the other switch continues the workflow: the second run does what the first run did."""
    switches: dict[str, dict[str, bool]] = {'on': dict.fromkeys(OUR_PATCHES, True), 'off': ALL_OFF}
    second = 'off' if first == 'on' else 'on'
    workflow_id = f'versioning-flip-{uuid.uuid4()}'
    first_client = _client_with(client, [PydanticAIPlugin(patches=switches[first])])
    # No sticky cache: the second worker replays the first run, then continues.
    async with Worker(first_client, task_queue=task_queue, workflows=[TwoRunsWorkflow], max_cached_workflows=0):
        handle = await first_client.start_workflow(TwoRunsWorkflow.run, id=workflow_id, task_queue=task_queue)
        with anyio.fail_after(60):
            while not await handle.query(TwoRunsWorkflow.first_finished):
                await anyio.sleep(0.05)
        after_first = _handler_activities(await handle.fetch_history())
    second_client = _client_with(client, [PydanticAIPlugin(patches=switches[second])])
    async with Worker(second_client, task_queue=task_queue, workflows=[TwoRunsWorkflow]):
        await handle.signal(TwoRunsWorkflow.resume)
        with anyio.fail_after(60):
            await handle.result()
        history = await handle.fetch_history()
    # The second run is the same as the first (a fresh conversation, the same tool calls): as many handler activities.
    assert _handler_activities(history) == 2 * after_first
    assert sorted(_markers(history)) == (sorted(OUR_PATCHES) if first == 'on' else [])
    for patches in (switches['on'], switches['off']):
        await _our_replayer(patches, [TwoRunsWorkflow]).replay_workflow(history)


def test_unknown_patch_ids_are_refused():
    with pytest.raises(
        UserError, match=r"Unknown patch id 'durable_temporal\.nope'.*'durable_temporal\.event_batches'"
    ):
        PydanticAIPlugin(patches={'durable_temporal.nope': False})
