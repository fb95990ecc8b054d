"""The committed golden histories replay on the current code: what our workflows schedule has not changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from harness.histories import history_files, replay_history
from temporalio.api.history.v1 import History
from temporalio.converter import DataConverter

from durable_temporal import PydanticAIPayloadConverter

pytestmark = [pytest.mark.anyio, pytest.mark.xdist_group('temporal')]


def test_temporal_golden_histories_cover_every_scenario() -> None:
    from harness import SCENARIOS

    recorded = {path.name.split('.')[0] for path in history_files()}
    assert recorded == set(SCENARIOS)


@pytest.mark.parametrize('path', history_files(), ids=lambda path: f'temporal-{path.stem}')
async def test_golden_history_replays(path: Path) -> None:
    result = await replay_history(path)
    assert result.replay_failure is None


def _activity_types() -> dict[str, tuple[list[Any], Any]]:
    """Every activity of the scenarios' agents: its name -> (argument types, return type)."""
    from harness.temporal_engine import TEMPORAL_AGENTS
    from temporalio.activity import _Definition  # pyright: ignore[reportPrivateUsage]

    types: dict[str, tuple[list[Any], Any]] = {}
    for agent in TEMPORAL_AGENTS.values():
        for function in agent.temporal_activities:
            definition = _Definition.must_from_callable(function)  # pyright: ignore[reportUnknownMemberType]
            assert definition.name is not None
            types[definition.name] = (list(definition.arg_types or []), definition.ret_type)
    return types


@pytest.mark.parametrize('path', history_files(), ids=lambda path: f'temporal-{path.stem}')
def test_recorded_activity_payloads_decode_on_this_line(path: Path) -> None:
    """An activity in flight when the worker is upgraded (say from pydantic-ai 1.107 to 2.x) still decodes.

    The histories were recorded on pydantic-ai 1.107: every activity's input (what a new worker receives) and result
    (what the workflow reads back) must decode into the types the installed line declares, with our converter.
    """
    converter = DataConverter(payload_converter_class=PydanticAIPayloadConverter).payload_converter
    history = History()
    json_format.ParseDict(json.loads(path.read_text(encoding='utf-8')), history, ignore_unknown_fields=True)
    types = _activity_types()
    scheduled: dict[int, str] = {}
    decoded = 0
    for event in history.events:
        if event.HasField('activity_task_scheduled_event_attributes'):
            attributes = event.activity_task_scheduled_event_attributes
            name = attributes.activity_type.name
            assert name in types, f'{path.name}: activity {name!r} is not registered by the current agents'
            arg_types, _ = types[name]
            values = converter.from_payloads(list(attributes.input.payloads), arg_types or None)
            assert len(values) == len(attributes.input.payloads)
            scheduled[event.event_id] = name
            decoded += 1
        elif event.HasField('activity_task_completed_event_attributes'):
            attributes = event.activity_task_completed_event_attributes
            name = scheduled[attributes.scheduled_event_id]
            _, ret_type = types[name]
            if attributes.result.payloads:
                converter.from_payloads(list(attributes.result.payloads), [ret_type] if ret_type else None)
    assert decoded > 0  # every scenario makes at least one model request
