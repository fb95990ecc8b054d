"""Values as canonical JSON data: the material of Prefect cache keys.

Two rules, in this order:

1. **Different inputs never share a key.** Anything that can tell two inputs apart enters the data: every field of
   a user's dataclass or pydantic model (private ones included), every attribute of a plain object, the captured
   values of a closure, the object a method is bound to. A value whose content cannot be read (a live resource such
   as a client, an object whose state lives in C, a structure nested deeper than we follow) is keyed by a token of
   its identity (`_instance_tokens.py`), never by its type alone.
2. **The same work keeps its key**, across attempts, processes and library upgrades: object identity never enters
   the data of a value keyed by content; fields that differ between attempts at the same work (timestamps, run and
   conversation ids of pydantic-ai messages) and fields at their declared default are left out; sets and mappings are
   ordered. A value's data is the same as before live objects got tokens, so keys recorded then still match.
"""

from __future__ import annotations

import copyreg
import dataclasses
import datetime
import decimal
import enum
import functools
import hashlib
import struct
import types
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any, cast

import pydantic
from pydantic_ai.messages import ModelRequest, ModelResponse
from pydantic_ai.models import Model
from pydantic_ai.tools import RunContext
from pydantic_ai.toolsets import AbstractToolset, ToolsetTool

from durable_kernel import DERIVED_FIELDS_2, field_default

from ._deps import deps_for_cache_key
from ._instance_tokens import instance_token
from ._key_text import Fragment, History, MessageKeyCache, key_text

__all__ = ('Canonicalizer', 'KeyAs', 'KeyedTaskInput', 'canonical_value', 'key_by_name')

_VOLATILE_MESSAGE_FIELDS = frozenset({'timestamp', 'run_id', 'conversation_id', 'request_timestamp', 'duration'})
"""Fields of pydantic-ai messages that differ between two attempts at the same work, so they never enter a key.

pydantic-ai 2.78 stamps a model response with when its request was sent and how long it took (`request_timestamp`,
`duration`): wall-clock, so a retried flow run that asks the model again gets other values for the same work."""

_MAX_DEPTH = 100
"""Values nested deeper than this are keyed by identity (`__deep__`): it keeps the walk within Python's recursion
limit. (Up to 0.3, values below depth 32 were keyed by their type alone, which confused different values.)"""

_RESOURCE_METHODS = ('close', 'aclose', 'dispose', '__enter__', '__aenter__')
"""Objects (other than data classes and collections) with any of these are live resources, keyed by identity."""

_MESSAGE_CLASSES = (ModelRequest, ModelResponse)
"""The messages of a conversation: serialized once per agent run (see `_key_text.py`)."""

_MESSAGE_TYPES = frozenset(_MESSAGE_CLASSES)
"""A list of exactly these is a conversation: one `History` piece of the key (see `_key_digest.py`)."""

_RUN_CONTEXT_KEY_FIELDS = (
    'deps',
    'metadata',
    'retries',
    'tool_call_id',
    'tool_name',
    'tool_call_approved',
    'tool_call_metadata',
    'retry',
    'max_retries',
    'run_step',
    'messages',
)
"""The run-context fields that identify the work (the run id and usage are per attempt, not per work).

`messages` (the conversation so far) is included so that a tool call made in one conversation is never answered
from another one's cache.
"""

_POINTER = struct.calcsize('P')

_NEWOBJ: Any = getattr(copyreg, '__newobj__')  # noqa: B009 (not in typeshed)
"""What pickle's default reduction calls: an object reduced so holds nothing beyond `__dict__` and `__slots__`."""

_NO_REFERENCE = 1 << 62
"""Larger than any depth: no cycle reference seen."""


class KeyedTaskInput(ABC):
    """A value that says which of its contents identify the work (the rest, like live objects, is ignored).

    Every task input of a durable agent is one. Prefect does not walk into instances of plain classes looking for
    futures, so passing one of these keeps large message histories and live run contexts out of Prefect's parameter
    traversal. A class of yours can be one too (subclass it, or `KeyedTaskInput.register(YourClient)` with a
    `cache_material` method): a client found in `deps` is then keyed by what its `cache_material()` returns (its
    tenant and endpoint, say) instead of by its identity in this process, so a crashed flow run re-run in another
    process finds the tasks that received it.
    """

    __slots__ = ()

    @abstractmethod
    def cache_material(self) -> Any:
        """The values that identify this input, keyed with [`canonical_value`][durable_prefect.canonical_value]."""


class KeyAs:
    """Canonical data given as is: a part of a key whose form is fixed (for example, to keep an existing key)."""

    __slots__ = ('data',)

    def __init__(self, data: Any) -> None:
        self.data = data


def _qualified_name(kind: type[Any] | Any) -> str:
    return f'{getattr(kind, "__module__", "?")}.{getattr(kind, "__qualname__", repr(kind))}'


def _type_of(value: object) -> type[Any]:
    return value.__class__


def _is_pydantic_ai_type(kind: type[Any]) -> bool:
    return kind.__module__.startswith('pydantic_ai.')


def _is_message_type(kind: type[Any]) -> bool:
    return kind.__module__.startswith('pydantic_ai.messages')


def _is_default(field: dataclasses.Field[Any], value: Any) -> bool:
    if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
        return False
    default = field_default(field)
    try:
        return type(value) is type(default) and bool(value == default)
    except Exception:  # an `__eq__` that refuses (arrays, ...): keep the field
        return False


@functools.cache
def _keyed_fields(kind: type[Any]) -> tuple[dataclasses.Field[Any], ...]:
    """The fields of dataclass `kind` that can enter a key, once per class (every key walks every message's parts).

    Volatile message fields and fields derived from others are left out; so are pydantic-ai's private fields
    (`_telemetry_...`: its bookkeeping, not the work), while a user's private fields are data.
    """
    own = _is_pydantic_ai_type(kind)
    skip = _VOLATILE_MESSAGE_FIELDS if _is_message_type(kind) else frozenset[str]()
    skip |= DERIVED_FIELDS_2.get(kind.__name__, frozenset[str]())
    return tuple(f for f in dataclasses.fields(kind) if f.name not in skip and not (own and f.name.startswith('_')))


def _has_hidden_state(kind: type[Any]) -> bool:
    """Whether instances keep state outside `__dict__` and `__slots__` (in C), by the layout test pickle applies."""
    if kind.__itemsize__:
        return True
    size = object.__basicsize__
    size += _POINTER if kind.__dictoffset__ else 0
    size += _POINTER if kind.__weakrefoffset__ else 0
    size += _POINTER * len(cast(list[str], copyreg._slotnames(kind)))  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]
    return kind.__basicsize__ > size


def _code_digest(code: types.CodeType) -> str:
    """What a function does (its bytecode, constants and names), without where it is written (no line numbers)."""
    digest = hashlib.sha256(code.co_code)
    for const in code.co_consts:
        digest.update(b'\0' + (_code_digest(const) if isinstance(const, types.CodeType) else repr(const)).encode())
    digest.update(repr((code.co_names, code.co_varnames, code.co_freevars, code.co_argcount)).encode())
    return digest.hexdigest()


def canonical_value(value: Any) -> Any:
    """Turn a value into plain JSON data that depends only on the value, and tells different values apart.

    Dataclasses, pydantic models and plain objects become their fields (private ones included, except pydantic-ai's
    own bookkeeping); sets and mappings are ordered; timestamps, run ids and conversation ids inside pydantic-ai
    messages are dropped (a retry of the same work produces new ones); run contexts keep only the fields that identify
    the work, deps and metadata included; classes and module-level functions become their qualified names, closures
    and bound methods add what they captured. Live resources (objects with `close`, `aclose`, `dispose` or a context
    manager protocol: clients, sessions, files, locks), objects whose state lives in C, and values nested more than
    100 levels deep are keyed by a token of their identity in this process (plus a resource's public attributes),
    never by their type alone (the rules: the Prefect guide, section Cache keys).

    Args:
        value: Any value.

    Returns:
        JSON-serializable data.
    """
    return Canonicalizer().visit(value, 0)


class Canonicalizer:
    """One walk over a task's inputs (ids below serve cycle detection and sharing only; they never enter the data)."""

    def __init__(self, messages: MessageKeyCache | None = None) -> None:
        """Start a walk.

        Args:
            messages: The agent run's message texts; with it, messages become `Fragment`s (for `key_text`).
        """
        self._messages = messages
        self._active: dict[int, int] = {}  # id -> depth of the objects being visited (the path from the root)
        self._done: dict[int, tuple[Any, Any]] = {}
        self._lowest_reference = _NO_REFERENCE

    def visit(self, value: Any, depth: int) -> Any:
        """The canonical data of `value`, found `depth` levels below the root."""
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float):
            if value == value and value not in (float('inf'), float('-inf')):
                return value
            return {'__float__': repr(value)}  # not the string 'nan' (up to 0.3 they had one key)
        if isinstance(value, KeyAs):
            return value.data
        if depth > _MAX_DEPTH:
            return {'__deep__': _qualified_name(_type_of(value)), 'instance': instance_token(value)}
        key = id(value)
        if key in self._active:
            # A cycle: name the ancestor it closes on by how far up it is, which is the same wherever it is found.
            ancestor = self._active[key]
            self._lowest_reference = min(self._lowest_reference, ancestor)
            return {'__cycle__': _qualified_name(_type_of(value)), 'up': depth - ancestor}
        if key in self._done:
            return self._done[key][1]
        if self._messages is not None and isinstance(value, _MESSAGE_CLASSES):
            return self._message(value)
        outer_reference, self._lowest_reference = self._lowest_reference, _NO_REFERENCE
        self._active[key] = depth
        try:
            result = self._visit_container(value, depth + 1)
        finally:
            del self._active[key]
        # Data that points above this value (a cycle through an ancestor) holds distances from here: valid here only.
        if self._lowest_reference >= depth:
            # The value is kept alive with its result, so that its id cannot be reused by another object meanwhile.
            self._done[key] = (value, result)
        self._lowest_reference = min(outer_reference, self._lowest_reference)
        return result

    def _message(self, message: Any) -> Fragment:
        assert self._messages is not None
        fragment = self._messages.get(message)
        if fragment is None:
            # Serialized on its own: its data does not depend on where it is found (no cycle leaves a message).
            fragment = Fragment(key_text(Canonicalizer().visit(message, 0)))
            self._messages.put(message, fragment)
        return fragment

    def _visit_container(self, value: Any, depth: int) -> Any:
        if isinstance(value, KeyedTaskInput):
            return self.visit(value.cache_material(), depth)
        if isinstance(value, enum.Enum):
            return {'__enum__': _qualified_name(_type_of(value)), 'value': self.visit(value.value, depth)}
        if isinstance(value, (bytes, bytearray, memoryview)):
            return {'__bytes__': hashlib.sha256(bytes(cast(bytes, value))).hexdigest()}
        if isinstance(
            value, (datetime.datetime, datetime.date, datetime.time, datetime.timedelta, uuid.UUID, decimal.Decimal)
        ):
            return {'__' + type(value).__name__ + '__': str(value)}
        if isinstance(value, PurePath):
            return {'__path__': str(value)}
        if isinstance(value, RunContext):
            ctx = cast(RunContext[Any], value)
            # With a `DepsResolver` the deps are keyed by their reference: it identifies the work, while the live
            # clients it resolves to would get a new identity token in every process (a resumed run would repeat its
            # tasks) and the credentials they hold do not belong in hashed material.
            fields = {
                name: self.visit(deps_for_cache_key(ctx.deps) if name == 'deps' else getattr(ctx, name, None), depth)
                for name in _RUN_CONTEXT_KEY_FIELDS
            }
            fields['loaded_capability_ids'] = sorted(getattr(ctx, 'loaded_capability_ids', None) or ())
            fields['discovered_tool_names'] = sorted(getattr(ctx, 'discovered_tool_names', None) or ())
            return {'__run_context__': fields}
        if isinstance(value, ToolsetTool):
            tool = cast(ToolsetTool[Any], value)
            return {'__tool__': self.visit(tool.tool_def, depth), 'max_retries': tool.max_retries}
        if isinstance(value, AbstractToolset):
            toolset = cast(AbstractToolset[Any], value)
            return {'__toolset__': toolset.id or toolset.label}
        if isinstance(value, Model):
            return {'__model__': value.system, 'name': value.model_name}
        if isinstance(value, Mapping):
            return self._visit_mapping(cast(Mapping[Any, Any], value), depth)
        if isinstance(value, (list, tuple)):
            items = cast(list[Any], value)
            # `type` (not `_type_of`, a Python function) keeps this test in C: it runs over the whole conversation in
            # every key, so its cost per message must stay far below the cost of keying one new message.
            if self._messages is not None and items and set(map(type, items)) <= _MESSAGE_TYPES:
                # A conversation: its messages are not walked here, the digest finds them in the run's chains.
                return History(list(items), self._message)
            return [self.visit(item, depth) for item in items]
        if isinstance(value, (set, frozenset)):
            items = [self.visit(item, depth) for item in cast(set[Any], value)]
            return {'__set__': sorted(items, key=key_text)}
        if isinstance(value, type) or callable(value) and hasattr(value, '__qualname__'):
            return self._visit_callable(value, depth)
        if dataclasses.is_dataclass(value):
            return self._visit_dataclass(value, depth)
        if isinstance(value, pydantic.BaseModel):
            return self._visit_pydantic(value, depth)
        return self._visit_object(value, depth)

    def _visit_mapping(self, value: Mapping[Any, Any], depth: int) -> Any:
        if all(isinstance(key, str) for key in value):
            return {'__map__': {key: self.visit(item, depth) for key, item in value.items()}}
        pairs = [[self.visit(key, depth), self.visit(item, depth)] for key, item in value.items()]
        return {'__pairs__': sorted(pairs, key=key_text)}

    def _visit_callable(self, value: Any, depth: int) -> Any:
        result: dict[str, Any] = {'__callable__': _qualified_name(value)}
        if isinstance(value, type):
            return result
        bound_to = getattr(value, '__self__', None)
        if bound_to is not None and not isinstance(bound_to, types.ModuleType):
            # A bound method: `client_a.fetch` and `client_b.fetch` share a qualified name, not an object.
            result['self'] = self.visit(bound_to, depth)
        if isinstance(value, types.FunctionType):
            if '<' in value.__qualname__:  # a lambda or a function defined in a function: the name is not unique
                result['code'] = _code_digest(value.__code__)
                if value.__defaults__:
                    result['defaults'] = self.visit(value.__defaults__, depth)
                if value.__kwdefaults__:
                    result['kwdefaults'] = self.visit(value.__kwdefaults__, depth)
            if value.__closure__:
                result['closure'] = [self._cell(cell, depth) for cell in value.__closure__]
        return result

    def _cell(self, cell: types.CellType, depth: int) -> Any:
        try:
            contents = cell.cell_contents
        except ValueError:  # not filled yet
            return {'__empty_cell__': True}
        return self.visit(contents, depth)

    def _visit_dataclass(self, value: Any, depth: int) -> Any:
        kind = _type_of(value)
        # A field at its declared default is left out: a library release that adds a field (pydantic-ai 2.x added
        # a dozen to messages and request parameters) must not change the key of the same work, or a flow run
        # resumed after the upgrade would repeat every call it had made.
        fields = {
            f.name: self.visit(field_value, depth)
            for f in _keyed_fields(kind)
            if not _is_default(f, field_value := getattr(value, f.name))
        }
        return {'__type__': _qualified_name(kind), **fields}

    def _visit_pydantic(self, value: pydantic.BaseModel, depth: int) -> Any:
        kind = type(value)
        data: dict[str, Any] = {name: self.visit(getattr(value, name), depth) for name in kind.model_fields}
        data.update({k: self.visit(v, depth) for k, v in (value.model_extra or {}).items()})
        private = value.__pydantic_private__
        if private and not _is_pydantic_ai_type(kind):
            # Private attributes count in the model's equality, so they count here (absent when unset: same key).
            data['__private__'] = self.visit(dict(private), depth)
        return {'__type__': _qualified_name(kind), **data}

    def _visit_object(self, value: Any, depth: int) -> Any:
        kind = _type_of(value)
        resource = any(hasattr(kind, method) for method in _RESOURCE_METHODS)
        if resource or _has_hidden_state(kind):
            return self._visit_live(value, kind, resource, depth)
        state = self._instance_state(value, public_only=False)
        result: dict[str, Any] = {'__object__': _qualified_name(kind)}
        if state:
            result['state'] = {key: self.visit(item, depth) for key, item in state.items()}
        return result

    def _visit_live(self, value: Any, kind: type[Any], resource: bool, depth: int) -> Any:
        if not resource:
            # State in C (a `functools.partial`, a compiled pattern): what the object gives pickle is its content.
            try:
                reduced = value.__reduce_ex__(4)
            except Exception:
                reduced = None
            if isinstance(reduced, tuple) and reduced and cast(tuple[Any, ...], reduced)[0] is not _NEWOBJ:
                parts = _materialized(cast(tuple[Any, ...], reduced))
                return {'__reduced__': _qualified_name(kind), 'parts': self.visit(parts, depth)}
            return {'__instance__': _qualified_name(kind), 'instance': instance_token(value)}
        # A live resource (client, session, connection, file, lock): its state changes as it is used and does not say
        # which one it is, so it is keyed by its identity in this process. Its public attributes (a client's tenant)
        # are added, so that one changed between two runs is not confused with its former self.
        result: dict[str, Any] = {'__resource__': _qualified_name(kind), 'instance': instance_token(value)}
        state = self._instance_state(value, public_only=True)
        if state:
            result['state'] = {key: self.visit(item, depth) for key, item in state.items()}
        return result

    def _instance_state(self, value: Any, *, public_only: bool) -> dict[str, Any]:
        state: dict[str, Any] = {}
        instance_dict = getattr(value, '__dict__', None)
        if isinstance(instance_dict, dict):
            state.update(cast(dict[str, Any], instance_dict))
        for slot in getattr(_type_of(value), '__slots__', ()):
            if isinstance(slot, str) and hasattr(value, slot):
                state[slot] = getattr(value, slot)
        if public_only:
            return {key: item for key, item in state.items() if not key.startswith('_')}
        return state


def _materialized(reduced: tuple[Any, ...]) -> list[Any]:
    """A pickle reduction with its item iterators (list and dict items) read into lists."""
    parts = list(reduced)
    for index in (3, 4):
        if index < len(parts) and parts[index] is not None:
            parts[index] = list(parts[index])
    return parts


def key_by_name(handler: Any) -> Any:
    """An event stream handler as it has always been keyed: by its qualified name (it does not change the work).

    A handler's captured state (the list it appends events to) changes as it runs; keyed by value, a retried flow
    run would deliver every batch again.
    """
    if handler is None or not hasattr(handler, '__qualname__'):
        return handler
    return KeyAs({'__callable__': _qualified_name(handler)})
