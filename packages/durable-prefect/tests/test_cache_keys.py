"""The default cache policy hashes by value: unit tests of the key functions (no server needed)."""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from prefect.cache_policies import CompoundCachePolicy, TaskSource
from pydantic import BaseModel, PrivateAttr
from pydantic_ai import RunContext
from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models.test import TestModel
from pydantic_ai.usage import RunUsage

from durable_prefect import (
    DEFAULT_CACHE_POLICY,
    DEFAULT_TASK_CONFIG,
    AgentRunScope,
    InputsByValue,
    KeyedTaskInput,
    canonical_value,
    value_key,
)


@dataclass
class Deps:
    tenant: str
    limits: dict[str, int] = field(default_factory=dict[str, int])


@dataclass
class LockedDeps:
    tenant: str
    lock: Any = field(default_factory=threading.Lock)


class Settings(BaseModel):
    region: str


def _messages(prompt: str, *, when: datetime, run_id: str) -> list[Any]:
    return [
        ModelRequest(parts=[UserPromptPart(prompt, timestamp=when)], run_id=run_id, conversation_id=run_id),
        ModelResponse(parts=[TextPart('hi')], timestamp=when, run_id=run_id, conversation_id=run_id),
    ]


def _ctx(deps: Any, metadata: dict[str, Any] | None = None, run_id: str = 'r1', **kwargs: Any) -> RunContext[Any]:
    return RunContext(deps=deps, model=TestModel(), usage=RunUsage(), metadata=metadata, run_id=run_id, **kwargs)


def test_equal_values_give_equal_keys_whatever_the_object_identity() -> None:
    assert value_key({'deps': Deps('acme', {'a': 1})}) == value_key({'deps': Deps('acme', {'a': 1})})
    assert value_key(Settings(region='eu')) == value_key(Settings(region='eu'))
    assert value_key({'b': 1, 'a': 2}) == value_key({'a': 2, 'b': 1})
    assert value_key({3, 1, 2}) == value_key({2, 3, 1})


def test_different_values_give_different_keys() -> None:
    assert value_key(Deps('acme')) != value_key(Deps('globex'))
    assert value_key(Deps('acme', {'a': 1})) != value_key(Deps('acme', {'a': 2}))
    assert value_key(Settings(region='eu')) != value_key(Settings(region='us'))
    assert value_key([1, 2]) != value_key([2, 1])
    assert value_key('1') != value_key(1)
    assert value_key(b'abc') != value_key(b'abd')


def test_timestamps_run_ids_and_conversation_ids_in_messages_are_ignored() -> None:
    early = datetime(2024, 1, 1, tzinfo=timezone.utc)
    late = datetime(2025, 6, 1, tzinfo=timezone.utc)
    assert value_key(_messages('hi', when=early, run_id='a')) == value_key(_messages('hi', when=late, run_id='b'))
    assert value_key(_messages('hi', when=early, run_id='a')) != value_key(_messages('ho', when=early, run_id='a'))


def test_timestamps_in_user_data_are_kept() -> None:
    early = datetime(2024, 1, 1, tzinfo=timezone.utc)
    late = datetime(2025, 6, 1, tzinfo=timezone.utc)
    assert value_key({'timestamp': early}) != value_key({'timestamp': late})


def test_run_context_key_holds_deps_metadata_and_messages_but_not_the_run_id() -> None:
    base = value_key(_ctx(Deps('acme'), {'region': 'eu'}, run_id='r1'))
    assert value_key(_ctx(Deps('acme'), {'region': 'eu'}, run_id='r2')) == base
    assert value_key(_ctx(Deps('globex'), {'region': 'eu'})) != base
    assert value_key(_ctx(Deps('acme'), {'region': 'us'})) != base
    assert value_key(_ctx(Deps('acme'), {'region': 'eu'}, tool_call_id='c1')) != base
    when = datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert value_key(_ctx(Deps('acme'), {'region': 'eu'}, messages=_messages('x', when=when, run_id='r'))) != base


def test_cycles_terminate_and_are_told_apart() -> None:
    cyclic: dict[str, Any] = {'name': 'loop'}
    cyclic['self'] = cyclic
    assert value_key(cyclic) == value_key(cyclic)
    # x -> y -> x and x -> y -> y: the same shape up to the cycle, which closes on another ancestor.
    x1: dict[str, Any] = {}
    y1: dict[str, Any] = {'c': x1}
    x1['c'] = y1
    x2: dict[str, Any] = {}
    y2: dict[str, Any] = {}
    y2['c'] = y2
    x2['c'] = y2
    assert value_key(x1) != value_key(x2)
    # A value met twice, once inside a cycle: its data there points outside it, so it is not reused elsewhere.
    a: list[Any] = []
    b: list[Any] = [a]
    a.append(b)
    e: list[Any] = []
    root: list[Any] = [[e], e]
    e.append(root)
    assert value_key([a, b]) != value_key(root)


def test_a_lock_is_keyed_by_its_identity_never_by_its_type_alone() -> None:
    deps = LockedDeps('acme')
    assert value_key(deps) == value_key(deps)
    assert value_key(LockedDeps('acme')) != value_key(deps)
    assert '0x' not in str(canonical_value(deps))  # no memory address: the token is never reused


def test_default_policy_is_inputs_by_value_plus_task_source_plus_agent_run() -> None:
    assert DEFAULT_TASK_CONFIG.get('cache_policy') is DEFAULT_CACHE_POLICY
    assert isinstance(DEFAULT_CACHE_POLICY, CompoundCachePolicy)
    kinds = {type(policy) for policy in DEFAULT_CACHE_POLICY.policies}
    assert kinds == {InputsByValue, TaskSource, AgentRunScope}
    assert InputsByValue().compute_key(None, {}, {}) is None  # pyright: ignore[reportArgumentType]
    assert AgentRunScope().compute_key(None, {}, {}) is None  # pyright: ignore[reportArgumentType]


@pytest.mark.parametrize('value', [float('nan'), float('inf'), 1.5, None, True])
def test_scalars_are_json_safe(value: Any) -> None:
    assert value_key(value) == value_key(value)


def test_shared_and_temporary_objects_are_keyed_by_value() -> None:
    shared = Deps('acme')
    assert value_key([shared, shared]) == value_key([Deps('acme'), Deps('acme')])
    assert value_key([{'a': [1]}, {'a': [2]}]) != value_key([{'a': [1]}, {'a': [1]}])


@dataclass
class ClientDeps:
    tenant: str
    client: httpx.AsyncClient


@pytest.mark.anyio
async def test_live_resources_in_deps_are_keyed_by_identity() -> None:
    async with httpx.AsyncClient() as first, httpx.AsyncClient() as second:
        key = value_key(ClientDeps('acme', first))
        assert value_key(ClientDeps('acme', second)) != key  # two clients are never one
        first.cookies.set('session', 'changes as the client is used')
        assert value_key(ClientDeps('acme', first)) == key  # its private state does not count
        assert value_key(ClientDeps('globex', first)) != key
        first.follow_redirects = not first.follow_redirects
        assert value_key(ClientDeps('acme', first)) != key  # its public attributes do


class TenantClient:
    def __init__(self, tenant: str) -> None:
        self.tenant = tenant

    def close(self) -> None:
        pass


def test_a_resource_changed_between_two_runs_is_not_its_former_self() -> None:
    client = TenantClient('acme')
    before = value_key(client)
    client.tenant = 'globex'
    assert value_key(client) != before
    assert value_key(TenantClient('globex')) != value_key(client)


def test_resource_tokens_are_never_reused_by_a_new_object() -> None:
    keys = {value_key(TenantClient('acme')) for _ in range(200)}  # each dies at once: addresses are reused
    assert len(keys) == 200


class PlainDeps:
    def __init__(self, tenant: str) -> None:
        self.tenant = tenant


def test_plain_objects_are_keyed_by_their_attributes() -> None:
    assert value_key(PlainDeps('acme')) == value_key(PlainDeps('acme'))
    assert value_key(PlainDeps('acme')) != value_key(PlainDeps('globex'))


def _fetch(tenant: str) -> str:
    return tenant


def _make_fetch(tenant: str) -> Any:
    def fetch() -> str:
        return tenant

    return fetch


@dataclass
class PrivateDeps:
    _tenant: str


class PrivateSettings(BaseModel):
    region: str
    _tenant: str = PrivateAttr(default='')


def _nested(depth: int, leaf: str) -> Any:
    value: Any = leaf
    for _ in range(depth):
        value = [value]
    return value


def test_values_that_older_keys_confused_are_told_apart() -> None:
    assert value_key(functools.partial(_fetch, 'acme')) != value_key(functools.partial(_fetch, 'globex'))
    assert value_key(_make_fetch('acme')) != value_key(_make_fetch('globex'))
    assert value_key(_make_fetch('acme')) == value_key(_make_fetch('acme'))  # a closure is its code and values
    assert value_key(lambda: 'acme') != value_key(lambda: 'globex')
    assert value_key(TenantClient('acme').close) != value_key(TenantClient('acme').close)  # bound to two objects
    assert value_key(re.compile('a+')) != value_key(re.compile('b+'))
    assert value_key(float('nan')) != value_key('nan')
    assert value_key(float('inf')) != value_key('inf')
    assert value_key(PrivateDeps('acme')) != value_key(PrivateDeps('globex'))
    acme, globex = PrivateSettings(region='eu'), PrivateSettings(region='eu')
    acme._tenant, globex._tenant = 'acme', 'globex'  # pyright: ignore[reportPrivateUsage]
    assert value_key(acme) != value_key(globex)
    assert value_key(_nested(150, 'acme')) != value_key(_nested(150, 'globex'))


class KeyedClient(KeyedTaskInput):
    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self._http = threading.Lock()  # stands for a live connection

    def cache_material(self) -> Any:
        return {'tenant': self.tenant}

    def close(self) -> None:
        pass


class RegisteredClient:
    def __init__(self, tenant: str) -> None:
        self.tenant = tenant

    def cache_material(self) -> Any:
        return {'tenant': self.tenant}

    def close(self) -> None:
        pass


KeyedTaskInput.register(RegisteredClient)


def test_a_client_that_says_what_identifies_it_is_keyed_by_that_in_every_process() -> None:
    assert value_key(TenantDeps('acme', KeyedClient('acme'))) == value_key(TenantDeps('acme', KeyedClient('acme')))
    assert value_key(KeyedClient('acme')) != value_key(KeyedClient('globex'))
    assert value_key(RegisteredClient('acme')) == value_key(RegisteredClient('acme'))
    assert value_key(RegisteredClient('acme')) != value_key(RegisteredClient('globex'))


@dataclass
class TenantDeps:
    tenant: str
    client: Any
