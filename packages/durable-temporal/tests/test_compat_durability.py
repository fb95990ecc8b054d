"""`TemporalDurability` against pydantic-ai 2.x's own capability of the same name (the activity names are persisted)."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterable, Callable
from typing import Any

from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import AgentStreamEvent
from pydantic_ai.models.test import TestModel
from temporalio import activity

from durable_kernel import PYDANTIC_AI_2
from durable_temporal import TemporalDurability

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

NOT_OURS = {'agent__compat_cap__toolset__<agent>__validate_args'}
"""2.68 validates function-tool arguments in an activity; ours (wrapper and capability) in workflow code."""


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
    reference = _reference_names()
    assert reference == PINNED_2_68
    assert _names(ours.temporal_activities) == [name for name in reference if name not in NOT_OURS]
