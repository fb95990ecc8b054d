"""Properties of cache keys over generated values: unequal inputs never share a key, equal data always does.

"Equal" is the keying rules' notion (docs/prefect.md, Cache keys), spelled out independently in `same` below:
data by value (a tuple is a list, NaN is NaN), pydantic-ai messages without their timestamps, live objects by
identity and public attributes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic_ai.messages import ModelRequest, ToolReturnPart, UserPromptPart

from durable_prefect import value_key


@dataclass
class Box:
    left: Any
    right: Any = None


class Item(BaseModel):
    value: Any


class Plain:
    def __init__(self, value: Any) -> None:
        self.value = value


class Client:
    def __init__(self, tenant: str) -> None:
        self.tenant = tenant

    def close(self) -> None:
        pass


# A spec is plain data describing a value; `build` makes the value, with fresh objects (and fresh clients) each time.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.binary(max_size=4),
)
hashable = st.one_of(st.integers(), st.text(max_size=4))


def _composites(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.tuples(st.just('list'), st.lists(children, max_size=3)),
        st.tuples(st.just('tuple'), st.lists(children, max_size=3)),
        st.tuples(st.just('dict'), st.dictionaries(st.text(max_size=4), children, max_size=3)),
        st.tuples(st.just('intdict'), st.dictionaries(st.integers(), children, max_size=3)),
        st.tuples(st.just('set'), st.frozensets(hashable, max_size=3)),
        st.tuples(st.just('box'), children, children),
        st.tuples(st.just('item'), children),
        st.tuples(st.just('plain'), children),
        st.tuples(st.just('client'), st.sampled_from(['acme', 'globex'])),
        st.tuples(st.just('prompt'), st.text(max_size=8)),
        st.tuples(st.just('tool_return'), children),
    )


specs = st.recursive(st.tuples(st.just('scalar'), scalars), _composites, max_leaves=12)


def build(spec: Any) -> Any:
    kind, *args = spec
    if kind == 'scalar':
        return args[0]
    if kind in ('list', 'tuple'):
        items = [build(item) for item in args[0]]
        return items if kind == 'list' else tuple(items)
    if kind in ('dict', 'intdict'):
        return {key: build(item) for key, item in args[0].items()}
    if kind == 'set':
        return args[0]
    if kind == 'box':
        return Box(build(args[0]), build(args[1]))
    if kind == 'item':
        return Item(value=build(args[0]))
    if kind == 'plain':
        return Plain(build(args[0]))
    if kind == 'client':
        return Client(args[0])
    if kind == 'prompt':
        return ModelRequest(parts=[UserPromptPart(args[0])])
    assert kind == 'tool_return'
    return ModelRequest(parts=[ToolReturnPart('t', build(args[0]), tool_call_id='c')])


def same(a: Any, b: Any) -> bool:
    """Equality as the keying rules define it (independent of the implementation)."""
    if isinstance(a, Client) or isinstance(b, Client):
        return a is b and a.tenant == b.tenant
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return type(a) is type(b) and a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        a_list, b_list = cast(list[Any], a), cast(list[Any], b)
        return len(a_list) == len(b_list) and all(same(x, y) for x, y in zip(a_list, b_list, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        a_items, b_items = cast(dict[Any, Any], a), cast(dict[Any, Any], b)
        return a_items.keys() == b_items.keys() and all(same(a_items[key], b_items[key]) for key in a_items)
    if type(cast(Any, a)) is not type(b):
        return False
    if isinstance(a, Box):
        return same(a.left, b.left) and same(a.right, b.right)
    if isinstance(a, (Item, Plain)):
        return same(a.value, b.value)
    if isinstance(a, ModelRequest):
        a_part, b_part = a.parts[0], b.parts[0]
        if isinstance(a_part, ToolReturnPart) and isinstance(b_part, ToolReturnPart):
            return same(a_part.content, b_part.content)
        return type(a_part) is type(b_part) and a_part.content == b_part.content
    return a == b


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(specs, specs)
def test_unequal_inputs_never_share_a_key(first: Any, second: Any) -> None:
    a, b = build(first), build(second)
    if value_key(a) == value_key(b):
        assert same(a, b)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(specs)
def test_the_same_spec_built_twice_shares_a_key_unless_it_holds_a_live_object(spec: Any) -> None:
    a, b = build(spec), build(spec)
    assert (value_key(a) == value_key(b)) == same(a, b)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(specs)
def test_a_value_keyed_twice_keeps_its_key(spec: Any) -> None:
    value = build(spec)
    assert value_key(value) == value_key(value)
