"""`TemporalDurability` against pydantic-ai 2.x's own capability of the same name (the activity names are persisted)."""

from __future__ import annotations

import importlib
import json
import os
import uuid
from collections.abc import AsyncIterable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from core_helpers import activity_names, skip_without_reference
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import AgentStreamEvent
from pydantic_ai.models.test import TestModel
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker

from durable_kernel import ARGS_VALIDATOR_UNITS, PYDANTIC_AI_2
from durable_temporal import AgentPlugin, PydanticAIPlugin, TemporalDurability
from durable_temporal.testing import agent_worker

PINNED_2_68 = [
    'agent__compat_cap__event_stream_handler',
    'agent__compat_cap__model_cancel_suspended_response',
    'agent__compat_cap__model_compact_messages',
    'agent__compat_cap__model_request',
    'agent__compat_cap__model_request_stream',
    'agent__compat_cap__toolset__<agent>__call_tool',
    'agent__compat_cap__toolset__<agent>__validate_args',
]
"""What pydantic-ai 2.68's `TemporalDurability` registers for the agents below (read from it on the pai2 matrix)."""

_TIMEOUT = timedelta(seconds=120)

NOT_OURS: set[str] = set() if ARGS_VALIDATOR_UNITS else {'agent__compat_cap__toolset__<agent>__validate_args'}
"""Ours validates function-tool arguments in that activity where the installed pydantic-ai does (2.68, 2.78; see
`test_validate_args.py`); the pinned 2.68 list is compared with ours on 1.107, which validates in workflow code."""

NOT_BUILT: set[str] = set()
"""Units of later 2.x releases that ours does not implement yet (docs/capability-form.md, "Not built yet"): none."""

LATER_UNITS = {'agent__compat_cap__model_count_tokens', 'agent__compat_cap__external_event_ask'}
"""Units of later 2.x releases that ours registers on every line (the pinned 2.68 list, compared on 1.107, lacks them):
2.78's token count ahead of a request (`test_count_tokens.py`) and the local activity that hands a wait's token to
`ask` (2.78's external events, `test_external_events.py`)."""


def shout(text: str) -> str:
    """Upper-case `text`."""
    return text.upper()


async def handler(ctx: RunContext[Any], events: AsyncIterable[AgentStreamEvent]) -> None:
    async for _ in events:
        pass


def _names(activities: list[Callable[..., Any]]) -> list[str]:
    return sorted(activity._Definition.must_from_callable(fn).name or '' for fn in activities)  # pyright: ignore[reportPrivateUsage, reportUnknownMemberType]


def _reference_names() -> list[str]:
    if not PYDANTIC_AI_2:
        return PINNED_2_68  # pydantic-ai 1.107 has no `TemporalDurability`
    # Imported by name: pyright reads the lock's pydantic-ai, which has no `TemporalDurability`.
    reference_module = importlib.import_module('pydantic_ai.durable_exec.temporal')
    reference_class: Any = reference_module.TemporalDurability
    agent = Agent(
        TestModel(), name='compat_cap', tools=[shout], capabilities=[reference_class(event_stream_handler=handler)]
    )
    reference: Any = reference_class.from_agent(agent)
    assert reference is not None
    return _names(list(reference.temporal_activities))


def test_activity_names_equal_the_reference_capability_form():
    agent = Agent(
        TestModel(), name='compat_cap', tools=[shout], capabilities=[TemporalDurability(event_stream_handler=handler)]
    )
    ours = TemporalDurability.from_agent(agent)
    assert ours is not None
    skip_without_reference()
    reference = _reference_names()
    # Later releases may add units (2.78: external events), but never drop or rename 2.68's: those names are persisted.
    assert set(PINNED_2_68) <= set(reference)
    lacking = sorted(set(reference) - set(PINNED_2_68) - NOT_BUILT - LATER_UNITS)
    assert not lacking, f'the reference registers units ours neither implements nor lists as not built: {lacking}'
    expected = sorted((set(reference) | LATER_UNITS) - NOT_OURS - NOT_BUILT)
    assert _names(ours.temporal_activities) == expected


# --- a run of pydantic-ai 2.x's `TemporalDurability` goes on with ours ---------------------------------------------

HISTORY = Path(__file__).parent / 'histories' / 'reference_capability' / 'switch.json'
"""A complete run of `SwitchWorkflow` by pydantic-ai 2.68's `TemporalDurability` (written by the 2.x test below when
`RECORD_CAPABILITY_HISTORY=1`): a streamed request, one tool call, the handler's activities, a second request."""


async def record_events(ctx: RunContext[Any], events: AsyncIterable[AgentStreamEvent]) -> None:
    async for _ in events:
        pass


switch_agent = Agent(
    TestModel(), name='cap_switch', tools=[shout], capabilities=[TemporalDurability(event_stream_handler=record_events)]
)

REFERENCE_AGENTS: dict[str, Agent[Any, str]] = {}
"""The reference's agent, built by the 2.x test (our packages cannot import the reference); run unsandboxed."""


@workflow.defn(name='CapabilitySwitchWorkflow')
class SwitchWorkflow:
    @workflow.run
    async def run(self, prompt: str) -> str:
        return (await switch_agent.run(prompt)).output


@workflow.defn(name='CapabilitySwitchWorkflow')
class ReferenceSwitchWorkflow:
    @workflow.run
    async def run(self, prompt: str) -> str:
        return (await REFERENCE_AGENTS['cap_switch'].run(prompt)).output


@pytest.mark.anyio
async def test_a_history_recorded_by_the_reference_capability_replays_on_ours():
    history = WorkflowHistory.from_json('reference-capability-switch', HISTORY.read_text())
    replayer = Replayer(workflows=[SwitchWorkflow], plugins=[PydanticAIPlugin()], debug_mode=True)
    await replayer.replay_workflow(history)
    assert 'agent__cap_switch__event_stream_handler' in HISTORY.read_text()


async def _wait_for_scheduled_activity(handle: WorkflowHandle[Any, Any]) -> None:
    with anyio.fail_after(60):
        while True:
            history = await handle.fetch_history()
            if any(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED for e in history.events):
                return
            await anyio.sleep(0.2)


@pytest.mark.anyio
@pytest.mark.skipif(not PYDANTIC_AI_2, reason='pydantic-ai 1.107 has no TemporalDurability of its own')
async def test_a_run_started_by_the_reference_capability_finishes_on_ours(client: Client, task_queue: str):
    skip_without_reference()
    reference_class: Any = importlib.import_module('pydantic_ai.durable_exec.temporal').TemporalDurability
    reference_agent = Agent(
        TestModel(),
        name='cap_switch',
        tools=[shout],
        capabilities=[reference_class(event_stream_handler=record_events)],
    )
    REFERENCE_AGENTS['cap_switch'] = reference_agent
    reference_activities = list(reference_class.from_agent(reference_agent).temporal_activities)

    # A whole run by the reference: its history replays on ours (and is the fixture of the test above).
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[ReferenceSwitchWorkflow],
        activities=reference_activities,
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        whole = await client.start_workflow(
            ReferenceSwitchWorkflow.run,
            'hello',
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=_TIMEOUT,
        )
        assert await whole.result() == '{"shout":"A"}'
    recorded = await whole.fetch_history()
    if os.environ.get('RECORD_CAPABILITY_HISTORY'):
        HISTORY.parent.mkdir(exist_ok=True)
        HISTORY.write_text(json.dumps(json.loads(recorded.to_json()), indent=1) + '\n')
    await Replayer(workflows=[SwitchWorkflow], plugins=[PydanticAIPlugin()], debug_mode=True).replay_workflow(recorded)

    # A run the reference's worker starts (no activities there: it stops at its first one) and ours finishes.
    switch_queue = f'{task_queue}-switch'
    async with Worker(
        client,
        task_queue=switch_queue,
        workflows=[ReferenceSwitchWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await client.start_workflow(
            ReferenceSwitchWorkflow.run,
            'hello',
            id=str(uuid.uuid4()),
            task_queue=switch_queue,
            execution_timeout=_TIMEOUT,
        )
        await _wait_for_scheduled_activity(handle)
    async with agent_worker(
        client, workflows=[SwitchWorkflow], plugins=[AgentPlugin(switch_agent)], task_queue=switch_queue
    ):
        assert await handle.result() == '{"shout":"A"}'
    names = await activity_names(client, handle)
    assert names == [
        'agent__cap_switch__model_request_stream',
        'agent__cap_switch__event_stream_handler',
        'agent__cap_switch__toolset__<agent>__call_tool',
        'agent__cap_switch__event_stream_handler',
        'agent__cap_switch__model_request_stream',
    ]
