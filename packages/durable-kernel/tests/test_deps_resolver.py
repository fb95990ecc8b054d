from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_ai import RunContext
from pydantic_ai.exceptions import UserError
from pydantic_ai.models.test import TestModel
from pydantic_ai.usage import RunUsage

from durable_kernel import DepsResolver, PartialRunContext, rebuild_run_context, with_deps_resolver


class Client:
    def __init__(self, api_key: str) -> None:
        self.api_key = api_key


@dataclass
class Live:
    tenant: str
    client: Client


class Ref(BaseModel):
    tenant: str


def resolve_ref(reference: Ref) -> Live:
    return Live(reference.tenant, Client(f'key-of-{reference.tenant}'))


RESOLVER = DepsResolver[Live, Ref](reference=lambda deps: Ref(tenant=deps.tenant), resolve=resolve_ref)


def live_context(deps: Any) -> RunContext[Any]:
    return RunContext(deps=deps, model=TestModel(), usage=RunUsage(), run_id='run-1')


def test_the_reference_crosses_and_the_live_deps_are_rebuilt():
    context_type = with_deps_resolver(PartialRunContext[Any], RESOLVER)
    live = Live('acme', Client('key-of-acme'))

    sent = context_type.serialize_deps(live)
    rebuilt = rebuild_run_context(context_type, context_type.serialize_run_context(live_context(live)), deps=sent)

    assert sent == Ref(tenant='acme')
    assert isinstance(rebuilt, PartialRunContext)
    assert isinstance(rebuilt.deps, Live)
    assert rebuilt.deps.client.api_key == 'key-of-acme'
    assert rebuilt.run_id == 'run-1'


def test_without_a_resolver_deps_cross_unchanged_and_the_type_is_kept():
    assert with_deps_resolver(PartialRunContext, None) is PartialRunContext
    assert PartialRunContext.serialize_deps({'a': 1}) == {'a': 1}
    assert rebuild_run_context(PartialRunContext, {}, deps={'a': 1}).deps == {'a': 1}


def test_the_bound_type_is_a_subclass_of_the_users_type_with_its_name():
    class MyContext(PartialRunContext[Any]):
        serialized_fields = ('run_id',)

    bound = with_deps_resolver(MyContext, RESOLVER)

    assert issubclass(bound, MyContext)
    assert bound.__name__ == 'MyContext'
    assert bound.serialized_fields == ('run_id',)
    assert bound.deps_resolver is RESOLVER
    assert MyContext.deps_resolver is None


def test_none_deps_are_not_given_to_the_resolver():
    context_type = with_deps_resolver(PartialRunContext, RESOLVER)
    assert context_type.serialize_deps(None) is None
    assert context_type.deserialize_deps(None) is None


def test_the_wire_type_is_resolves_parameter_annotation_unless_given():
    assert RESOLVER.wire_type() is Ref
    assert DepsResolver[Any, Any](reference=lambda d: d, resolve=lambda r: r).wire_type() is Any
    assert DepsResolver[Any, Any](reference=str, resolve=resolve_ref, reference_type=dict).wire_type() is dict


def test_a_failing_reference_raises_a_user_error_saying_what_to_pass():
    context_type = with_deps_resolver(PartialRunContext, RESOLVER)
    with pytest.raises(UserError, match=r'`DepsResolver.reference` failed on the deps of type str.*live deps'):
        context_type.serialize_deps('not live deps')
