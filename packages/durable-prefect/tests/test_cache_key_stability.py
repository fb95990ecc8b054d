"""Keys of content-keyable inputs are the ones durable-prefect 0.3 computed: runs recorded before resume from cache.

The expected digests were computed by the 0.3 code (before live objects got identity tokens and before messages were
serialized once per run); an input whose key changes here would make every flow run in flight repeat its calls.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_ai import RunContext
from pydantic_ai.messages import (
    ModelRequest,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.test import TestModel
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.usage import RunUsage

from durable_prefect import canonical_value, value_key
from durable_prefect._key_text import message_key_cache

WHEN = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


@dataclass
class StableDeps:
    tenant: str
    limits: dict[str, int] = field(default_factory=dict[str, int])
    tags: tuple[str, ...] = ()


class StableSettings(BaseModel):
    region: str
    retries: int = 2


class PlainConfig:
    def __init__(self, name: str) -> None:
        self.name = name
        self.weights = [1.5, 2.0]


def history() -> list[Any]:
    return [
        ModelRequest(
            parts=[SystemPromptPart('be brief', timestamp=WHEN), UserPromptPart('orders?', timestamp=WHEN)],
            instructions='answer in English',
        ),
        ModelResponse(parts=[ToolCallPart('orders', {'limit': 3}, tool_call_id='c1')], timestamp=WHEN),
        ModelRequest(parts=[ToolReturnPart('orders', ['a', 'b'], tool_call_id='c1', timestamp=WHEN)]),
        ModelResponse(parts=[TextPart('two orders')], timestamp=WHEN),
    ]


def ctx(messages: list[Any]) -> RunContext[Any]:
    deps = StableDeps('acme', {'orders': 3}, ('vip',))
    return RunContext(
        deps=deps, model=TestModel(), usage=RunUsage(), metadata={'region': 'eu'}, messages=messages, run_step=2
    )


def model_request_material() -> dict[str, Any]:
    messages = history()
    tool = ToolDefinition(name='orders', parameters_json_schema={'type': 'object', 'properties': {}})
    return {
        'request': {
            'model': TestModel(),
            'messages': messages,
            'model_settings': {'temperature': 0.0},
            'model_request_parameters': ModelRequestParameters(function_tools=[tool]),
            'run_context': ctx(messages),
            'handler': None,
        }
    }


def tool_call_material() -> dict[str, Any]:
    return {'call': {'name': 'orders', 'tool_args': {'limit': 3}, 'ctx': ctx(history())}}


CASES: dict[str, Any] = {
    'model request': model_request_material,
    'tool call': tool_call_material,
    'deps': lambda: StableDeps('acme', {'a': 1}, ('x', 'y')),
    'pydantic': lambda: StableSettings(region='eu'),
    'plain object': lambda: PlainConfig('acme'),
    'scalars and collections': lambda: {'n': 1, 'f': 0.5, 's': {3, 1}, 'b': b'x', 'when': WHEN, 'pairs': {1: 'a'}},
}

EXPECTED: dict[str, str] = {
    'deps': 'b9bfa611fed3dd87a148b48f930fc5a87c1db74e3948377101158620172ba7a5',
    'model request': '4249847b576820cbd2e2bc56a1746a9403f90e33041b02a24f4022b91391f8f5',
    'plain object': 'bb3048aac51478170189fc27db10b860d1fd11d25131db61e0b17489cad82e88',
    'pydantic': '06bf41b5300fba127dbf4f3c61168b8d35e455fdae74030ced1e58ad50ff4bc1',
    'scalars and collections': '860bc71b683ff8b5edc1ab73aa4ac6b41538682fa7e99d9f89b82fab822c3271',
    'tool call': '703cba2ed00eb2e9cfcfdbff853c74c23d21846d63056a2da8925f5d08c177b4',
}
"""Computed by durable-prefect 0.3 (commit 46ebed1) on pydantic-ai 1.107.10."""


@pytest.mark.parametrize('case', sorted(CASES))
def test_keys_of_content_keyable_inputs_did_not_change(case: str) -> None:
    assert value_key(CASES[case]()) == EXPECTED[case]


@pytest.mark.parametrize('case', sorted(CASES))
def test_keys_inside_an_agent_run_are_the_same_with_messages_serialized_once(case: str) -> None:
    value = CASES[case]()
    with message_key_cache():
        first = value_key(value)
        assert value_key(value) == first  # the second time, the messages' kept texts are spliced in
    assert first == EXPECTED[case]


@pytest.mark.parametrize('case', sorted(CASES))
def test_key_is_the_hash_of_the_canonical_json(case: str) -> None:
    text = json.dumps(canonical_value(CASES[case]()), sort_keys=True, separators=(',', ':'))
    assert value_key(CASES[case]()) == hashlib.sha256(text.encode()).hexdigest()


def test_a_message_changed_after_it_was_keyed_is_keyed_again() -> None:
    # pydantic-ai sets a request's instructions after the request joined the history (an MCP listing may have keyed
    # it by then): the kept text must not stand for the changed message.
    messages = history()
    with message_key_cache():
        value_key(messages)
        messages[0].instructions = 'answer in French'
        assert value_key(messages) == value_key_afresh(messages)
        messages[1].parts[0] = TextPart('three orders')
        assert value_key(messages) == value_key_afresh(messages)
        messages[3].parts.append(TextPart('and a refund'))
        assert value_key(messages) == value_key_afresh(messages)
        part = messages[2].parts[0]
        assert isinstance(part, ToolReturnPart)
        part.content = ['c']
        assert value_key(messages) == value_key_afresh(messages)


def value_key_afresh(value: Any) -> str:
    text = json.dumps(canonical_value(value), sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(text.encode()).hexdigest()


def test_the_task_functions_source_is_pinned() -> None:
    """Prefect's `TASK_SOURCE` (part of every task's cache key) hashes the source of each task function: editing one
    makes every flow run in flight at the upgrade repeat that unit's calls (a model request paid again;
    tests-integration/test_upgrade.py::test_prefect_run_recorded_on_1107_resumes_from_its_cache). Put new behaviour
    around them (`agent_task`) instead; change one only on purpose, say so in the changelog, and update its hash."""
    import importlib
    import inspect

    def task(module: str, name: str) -> Any:
        return getattr(importlib.import_module(f'durable_prefect.{module}'), name)

    tasks = {
        'model request': task('_model', '_REQUEST_TASK'),
        'streamed model request': task('_model', '_STREAM_TASK'),
        'compact messages': task('_model', '_COMPACT_TASK'),
        'cancel suspended response': task('_model', '_CANCEL_TASK'),
        'count tokens': task('_model', '_COUNT_TASK'),
        'tool call': task('_toolset', 'TOOL_CALL_TASK'),
        'MCP tool listing': task('_mcp', '_LIST_TOOLS_TASK'),
        'event handler': task('_event_handler', '_EVENT_TASK'),
    }
    # As Prefect reads it: `inspect.getsource` of the task, which unwraps to the task function.
    hashes = {name: hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()[:16] for name, fn in tasks.items()}
    assert hashes == {
        'model request': 'cdc5c35efc30daeb',
        'streamed model request': 'b31559377c8a6363',
        'compact messages': '44e129794a1e2494',
        'cancel suspended response': '24d35bb7c7fe0843',
        'count tokens': '4d5dc810b8569bee',
        'tool call': 'fd10e440b6aa0f8f',
        'MCP tool listing': 'da3ca90c6f8a5f71',
        'event handler': '86bb1902720bc057',
    }
