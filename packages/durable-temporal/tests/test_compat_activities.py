"""Activities in flight across a swap: each implementation's activities accept the other's recorded inputs.

Replay (see `test_compat_reference.py`) checks the commands a workflow issues and that recorded activity *results*
decode. When the import is swapped while an activity is scheduled but not yet run, the new worker's activity
receives the old implementation's *inputs*: here every recorded input is decoded with the other implementation's
activity signature and the activity is run on it, and its result must have the same shape as the recorded one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from core_helpers import import_reference_app, skip_without_reference
from histories import ours_app
from histories.scenarios import SCENARIOS
from temporalio import activity
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.testing import ActivityEnvironment

from durable_kernel import PYDANTIC_AI_2
from durable_temporal import PydanticAIPayloadConverter

pytestmark = pytest.mark.anyio

reference_app: Any = import_reference_app()
"""`None` where the reference does not import (pydantic-ai 2.33 with temporalio >= 1.34): its tests skip, ours run."""

HISTORIES = Path(__file__).parent / 'histories'
CONVERTER = DataConverter(payload_converter_class=PydanticAIPayloadConverter).payload_converter


def _activities(app: Any) -> dict[str, Callable[..., Any]]:
    found: dict[str, Callable[..., Any]] = {}
    for agent in app.AGENTS.values():
        for fn in agent.temporal_activities:
            found[activity._Definition.must_from_callable(fn).name or ''] = fn  # pyright: ignore[reportPrivateUsage, reportUnknownMemberType]
    return found


def _recorded_calls(impl: str, scenario: str) -> Iterator[tuple[HistoryEvent, HistoryEvent]]:
    """(scheduled, completed) event pairs of a recorded history."""
    history = WorkflowHistory.from_json(scenario, (HISTORIES / impl / f'{scenario}.json').read_text())
    scheduled = {
        event.event_id: event for event in history.events if event.HasField('activity_task_scheduled_event_attributes')
    }
    for event in history.events:
        if event.HasField('activity_task_completed_event_attributes'):
            yield scheduled[event.activity_task_completed_event_attributes.scheduled_event_id], event


def _missing(expected: Any, produced: Any, path: str = '') -> list[str]:
    """Where `produced` lacks the structure of `expected` (keys and JSON types; values such as timestamps differ).

    Extra keys in `produced`, and missing keys whose expected value is `None`, are fine: a field one implementation
    adds (ours adds `toolset_instructions` to dynamic tool listings, reference defect 5) is ignored by the other's
    decoder, and decodes as `None` when absent.
    """
    if isinstance(expected, dict):
        if not isinstance(produced, dict):
            return [f'{path}: {type(produced).__name__} instead of an object']
        expected_fields, produced_fields = cast('dict[str, Any]', expected), cast('dict[str, Any]', produced)
        problems: list[str] = []
        for key, value in expected_fields.items():
            if key in produced_fields:
                problems += _missing(value, produced_fields[key], f'{path}.{key}')
            elif value is not None:  # an absent optional field decodes as its default, `None`
                problems.append(f'{path}.{key}: missing')
        return problems
    if isinstance(expected, list):
        expected_items = cast('list[Any]', expected)
        if not isinstance(produced, list) or len(cast('list[Any]', produced)) != len(expected_items):
            return [f'{path}: {produced!r} instead of a list like {expected!r}']
        produced_items = cast('list[Any]', produced)
        return [
            problem
            for i, (e, p) in enumerate(zip(expected_items, produced_items, strict=True))
            for problem in _missing(e, p, f'{path}[{i}]')
        ]
    if type(expected) is not type(produced) and None not in (expected, produced):
        return [f'{path}: {type(produced).__name__} instead of {type(expected).__name__}']
    return []


async def _run_recorded_inputs(recorded_by: str, runner_app: Any, scenario: str) -> None:
    activities = _activities(runner_app)
    for scheduled, completed in _recorded_calls(recorded_by, scenario):
        attributes = scheduled.activity_task_scheduled_event_attributes
        fn = activities[attributes.activity_type.name]
        definition = activity._Definition.must_from_callable(fn)  # pyright: ignore[reportPrivateUsage, reportUnknownMemberType]
        args = CONVERTER.from_payloads(list(attributes.input.payloads), definition.arg_types)
        result = await ActivityEnvironment().run(fn, *args)
        recorded = list(completed.activity_task_completed_event_attributes.result.payloads)
        expected = CONVERTER.from_payloads(recorded)[0] if recorded else None
        produced = CONVERTER.from_payloads(CONVERTER.to_payloads([result]))[0]
        assert _missing(expected, produced) == [], attributes.activity_type.name


@pytest.mark.parametrize('scenario', SCENARIOS)
async def test_our_activities_run_the_reference_inputs(scenario: str):
    await _run_recorded_inputs('reference', ours_app, scenario)


@pytest.mark.skipif(
    PYDANTIC_AI_2,
    reason='about the reference as of pydantic-ai 1.107: the 2.x reference `TemporalAgent` returns results of another '
    'shape (for its own 2.x workflow code), so rolling back from ours is only to the 1.107 reference',
)
@pytest.mark.parametrize('scenario', SCENARIOS)
async def test_reference_activities_run_inputs_of_our_0_1(scenario: str):
    """Rolling back to the reference with activities in flight works for what durable-temporal 0.1 scheduled.

    Since 0.2 model activities are sent message deltas that only ours can complete into the whole conversation
    (see docs/migration.md): roll back only once no model activity is in flight.
    """
    skip_without_reference()
    await _run_recorded_inputs('ours_0.1', reference_app, scenario)
