from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic_ai import Agent, RunContext
from pydantic_ai.exceptions import UserError
from pydantic_ai.models.test import TestModel
from pydantic_ai.usage import RunUsage

from durable_kernel import RUN_CONTEXT_FIELDS, PartialRunContext, rebuild_run_context


def live_context(**overrides: Any) -> RunContext[int]:
    values: dict[str, Any] = {'deps': 7, 'model': TestModel(), 'usage': RunUsage(requests=2), 'run_id': 'run-1'}
    values.update(overrides)
    return RunContext(**values)


def test_serialize_sends_exactly_the_documented_fields():
    data = PartialRunContext.serialize_run_context(live_context(retry=3, tool_name='t', metadata={'k': 'v'}))
    assert tuple(data) == RUN_CONTEXT_FIELDS
    assert 'deps' not in data
    assert data['retry'] == 3
    assert data['tool_name'] == 't'
    assert data['metadata'] == {'k': 'v'}
    assert data['usage'] == RunUsage(requests=2)


def test_rebuilt_context_has_the_sent_fields_deps_and_agent():
    agent = Agent(TestModel(), name='a')
    data = PartialRunContext.serialize_run_context(live_context(retry=2))
    ctx = rebuild_run_context(PartialRunContext, data, deps={'tenant': 'x'}, agent=agent)
    assert isinstance(ctx, RunContext)
    assert ctx.deps == {'tenant': 'x'}
    assert ctx.retry == 2
    assert ctx.run_id == 'run-1'
    assert ctx.agent is agent


@pytest.mark.parametrize('field', ['model', 'prompt', 'messages', 'tracer', 'model_settings', 'conversation_id'])
def test_reading_an_unsent_field_raises_a_user_error_with_the_fix(field: str):
    ctx = rebuild_run_context(PartialRunContext, {'retry': 0}, deps=None)
    with pytest.raises(UserError, match=rf'`PartialRunContext\.{field}` is not available.*subclass'):
        getattr(ctx, field)


def test_a_field_with_a_class_default_is_not_silently_defaulted():
    # `retry` has a plain default (a class attribute on the dataclass): it must still count as unavailable.
    ctx = rebuild_run_context(PartialRunContext, {'run_id': 'r'}, deps=None)
    with pytest.raises(UserError, match='retry'):
        _ = ctx.retry


def test_subclass_can_send_more_fields_and_change_the_hint():
    @dataclass
    class Extra:
        value: int

    class MyContext(PartialRunContext[Any]):
        unavailable_field_hint = 'Ask the platform team.'

        @classmethod
        def serialize_run_context(cls, ctx: RunContext[Any]) -> dict[str, Any]:
            return {**super().serialize_run_context(ctx), 'prompt': ctx.prompt}

    data = MyContext.serialize_run_context(live_context(prompt='hello'))
    ctx = rebuild_run_context(MyContext, data, deps=Extra(1))
    assert isinstance(ctx, MyContext)
    assert ctx.prompt == 'hello'
    with pytest.raises(UserError, match='Ask the platform team'):
        _ = ctx.model


def test_serialized_context_pickles():
    data = PartialRunContext.serialize_run_context(live_context())
    assert pickle.loads(pickle.dumps(data)) == data


def test_non_field_attribute_errors_stay_attribute_errors():
    ctx = rebuild_run_context(PartialRunContext, {}, deps=None)
    with pytest.raises(AttributeError):
        getattr(ctx, 'not_a_field')  # noqa: B009


def test_dataclasses_replace_copies_only_the_sent_fields():
    import dataclasses

    ctx = rebuild_run_context(PartialRunContext, {'retry': 1, 'run_id': 'r'}, deps='d')
    copy = dataclasses.replace(ctx, tool_name='t')
    assert isinstance(copy, PartialRunContext)
    assert (copy.retry, copy.run_id, copy.deps, copy.tool_name) == (1, 'r', 'd', 't')
    with pytest.raises(UserError, match='model'):
        _ = copy.model
