"""The engine-agnostic capability base: binding once per agent on both pydantic-ai lines, the model registry, and
pass-through outside a durable context (the engine tests cover inside)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic_ai import Agent
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import AgentStreamEvent, FunctionToolCallEvent, PartStartEvent, TextPart, ToolCallPart
from pydantic_ai.models.test import TestModel
from pydantic_ai.tools import RunContext

from durable_kernel import DurabilityCapability, is_model_stream_event


class _Recording(DurabilityCapability[Any]):
    engine_name = 'Recording'
    unit_plural = 'units'

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bound_to: list[str] = []

    @property
    def in_durable_context(self) -> bool:
        return False

    def _bind_to_agent(self, agent: Any) -> None:
        self.bound_to.append(self.name)


def test_one_binding_per_agent_shared_by_every_lookup() -> None:
    capability = _Recording()
    first = Agent(TestModel(), name='first', capabilities=[capability])
    second = Agent(TestModel(), name='second', capabilities=[capability])

    bound_first = _Recording.from_agent(first)
    assert bound_first is _Recording.from_agent(first)
    assert bound_first is not capability
    assert capability.agent is None
    assert bound_first.agent is first
    assert bound_first.name == 'first'
    assert _Recording.from_agent(second).name == 'second'
    first.run_sync('hello')
    assert capability.bound_to.count('first') == 1


def test_explicit_name_wins_and_a_nameless_agent_is_refused() -> None:
    assert _Recording.from_agent(Agent(TestModel(), capabilities=[_Recording(name='given')])).name == 'given'
    with pytest.raises(UserError, match=r'needs a unique `name`, the same in every deploy.*_Recording\(\.\.\.\)'):
        _Recording.from_agent(Agent(TestModel(), capabilities=[_Recording()]))


def test_two_durability_capabilities_on_one_agent_are_refused() -> None:
    agent = Agent(TestModel(), name='twice', capabilities=[_Recording(), _Recording()])
    with pytest.raises(UserError, match='attach exactly one'):
        _Recording.from_agent(agent)


def test_an_agent_without_the_capability_has_none() -> None:
    assert _Recording.from_agent(Agent(TestModel(), name='bare')) is None


def test_model_keys_name_the_default_and_registered_models_only() -> None:
    default, other, stranger = TestModel(), TestModel(custom_output_text='other'), TestModel()
    agent = Agent(default, name='keys', capabilities=[_Recording(models={'other': other})])
    bound = _Recording.from_agent(agent)
    assert bound.model_key(default) is None
    assert bound.model_key(other) == 'other'
    assert bound.model_for_key('other') is other
    assert bound.model_for_key(None) is default
    with pytest.raises(UserError, match=r'neither the agent.s default model nor registered'):
        bound.model_key(stranger)
    with pytest.raises(UserError, match=r'asks for the model .missing.'):
        bound.model_for_key('missing')


def test_outside_a_durable_context_the_handler_sees_the_events_as_without_it() -> None:
    seen: list[str] = []

    async def handler(ctx: RunContext[Any], stream: Any) -> None:
        async for event in stream:
            seen.append(type(event).__name__)

    agent = Agent(
        TestModel(call_tools=['tool']), name='events', capabilities=[_Recording(event_stream_handler=handler)]
    )

    @agent.tool_plain
    def tool() -> str:
        return 'done'

    assert agent.run_sync('go').output
    assert 'FunctionToolCallEvent' in seen
    assert 'FunctionToolResultEvent' in seen
    assert 'PartStartEvent' in seen


def test_model_stream_events_are_told_from_the_others() -> None:
    part: AgentStreamEvent = PartStartEvent(index=0, part=TextPart('x'))
    call: AgentStreamEvent = FunctionToolCallEvent(part=ToolCallPart('t'))
    assert is_model_stream_event(part)
    assert not is_model_stream_event(call)
