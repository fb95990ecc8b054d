"""Cache keys by value: how a retried or resumed flow run finds the model and tool tasks it already completed.

Prefect resumes by cache key, not by position in a log, so the key must be the same for the same work on a
retry (no object identity, no timestamps, no per-attempt ids) and different for different work (prompt, deps,
metadata, message history, model, tool arguments all count).
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import hashlib
import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, cast

import pydantic
from prefect.cache_policies import TASK_SOURCE, CachePolicy
from prefect.context import FlowRunContext, TaskRunContext
from pydantic_ai.models import Model
from pydantic_ai.tools import RunContext
from pydantic_ai.toolsets import AbstractToolset, ToolsetTool

from durable_kernel import DERIVED_FIELDS_2, field_default

__all__ = (
    'DEFAULT_CACHE_POLICY',
    'AgentRunScope',
    'InputsByValue',
    'KeyedTaskInput',
    'canonical_value',
    'value_key',
)

_VOLATILE_MESSAGE_FIELDS = frozenset({'timestamp', 'run_id', 'conversation_id'})
"""Fields of pydantic-ai messages that differ between two attempts at the same work, so they never enter a key."""

_MAX_DEPTH = 32
"""Nesting below this depth is summarized by type: it bounds the cost of keying large opaque objects."""

_RESOURCE_METHODS = ('close', 'aclose', 'dispose', '__enter__', '__aenter__')
"""Objects (other than data classes and collections) with any of these are live resources, keyed by type only."""

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


class KeyedTaskInput(ABC):
    """A task argument that says which of its contents identify the work (the rest, like live objects, is ignored).

    Prefect does not walk into instances of plain classes looking for futures, so passing one of these keeps
    large message histories and live run contexts out of Prefect's parameter traversal.
    """

    __slots__ = ()

    @abstractmethod
    def cache_material(self) -> Any:
        """The values that identify this input, keyed with [`canonical_value`][durable_prefect.canonical_value]."""


def _qualified_name(kind: type[Any] | Any) -> str:
    return f'{getattr(kind, "__module__", "?")}.{getattr(kind, "__qualname__", repr(kind))}'


def _type_of(value: object) -> type[Any]:
    return value.__class__


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


def _json_sort_key(item: Any) -> str:
    return json.dumps(item, sort_keys=True, separators=(',', ':'))


def canonical_value(value: Any) -> Any:
    """Turn a value into plain JSON data that depends only on the value, never on object identity.

    Dataclasses, pydantic models and plain objects become their fields; sets and mappings are ordered;
    timestamps, run ids and conversation ids inside pydantic-ai messages are dropped (a retry of the same work
    produces new ones); run contexts keep only the fields that identify the work, deps and metadata included;
    functions and classes become their qualified names; live resources (objects with `close`, `aclose`,
    `dispose` or a context manager protocol: clients, sessions, files, locks) become their type name, because
    their state changes as they are used.

    Args:
        value: Any value.

    Returns:
        JSON-serializable data.
    """
    return _Canonicalizer().visit(value, 0)


def value_key(value: Any) -> str:
    """A stable hash of a value, by [`canonical_value`][durable_prefect.canonical_value].

    Args:
        value: Any value.

    Returns:
        A hex digest.
    """
    return hashlib.sha256(_json_sort_key(canonical_value(value)).encode()).hexdigest()


class _Canonicalizer:
    def __init__(self) -> None:
        # Ids are used for cycle detection and to visit a shared object once; they never enter the result.
        self._active: set[int] = set()
        self._done: dict[int, tuple[Any, Any]] = {}

    def visit(self, value: Any, depth: int) -> Any:
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float):
            return value if value == value and value not in (float('inf'), float('-inf')) else repr(value)
        if depth > _MAX_DEPTH:
            return {'__deep__': _qualified_name(_type_of(value))}
        key = id(value)
        if key in self._active:
            return {'__cycle__': _qualified_name(_type_of(value))}
        if key in self._done:
            return self._done[key][1]
        self._active.add(key)
        try:
            result = self._visit_container(value, depth + 1)
        finally:
            self._active.discard(key)
        # The value is kept alive with its result, so that its id cannot be reused by another object meanwhile.
        self._done[key] = (value, result)
        return result

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
            fields = {name: self.visit(getattr(ctx, name, None), depth) for name in _RUN_CONTEXT_KEY_FIELDS}
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
            return [self.visit(item, depth) for item in cast(list[Any], value)]
        if isinstance(value, (set, frozenset)):
            items = [self.visit(item, depth) for item in cast(set[Any], value)]
            return {'__set__': sorted(items, key=_json_sort_key)}
        if isinstance(value, type) or callable(value) and hasattr(value, '__qualname__'):
            return {'__callable__': _qualified_name(value)}
        if dataclasses.is_dataclass(value):
            kind = type(value)
            skip = _VOLATILE_MESSAGE_FIELDS if _is_message_type(kind) else frozenset[str]()
            skip |= DERIVED_FIELDS_2.get(kind.__name__, frozenset[str]())
            # A field at its declared default is left out: a library release that adds a field (pydantic-ai 2.x added
            # a dozen to messages and request parameters) must not change the key of the same work, or a flow run
            # resumed after the upgrade would repeat every call it had made. Private fields (`_telemetry_...`) are the
            # library's bookkeeping, not the work: left out too.
            fields = {
                f.name: self.visit(field_value, depth)
                for f in dataclasses.fields(value)
                if f.name not in skip
                and not f.name.startswith('_')
                and not _is_default(f, field_value := getattr(value, f.name))
            }
            return {'__type__': _qualified_name(kind), **fields}
        if isinstance(value, pydantic.BaseModel):
            data: dict[str, Any] = {name: self.visit(getattr(value, name), depth) for name in type(value).model_fields}
            data.update({k: self.visit(v, depth) for k, v in (value.model_extra or {}).items()})
            return {'__type__': _qualified_name(_type_of(value)), **data}
        return self._visit_object(value, depth)

    def _visit_mapping(self, value: Mapping[Any, Any], depth: int) -> Any:
        if all(isinstance(key, str) for key in value):
            return {'__map__': {key: self.visit(item, depth) for key, item in value.items()}}
        pairs = [[self.visit(key, depth), self.visit(item, depth)] for key, item in value.items()]
        return {'__pairs__': sorted(pairs, key=_json_sort_key)}

    def _visit_object(self, value: Any, depth: int) -> Any:
        kind = _type_of(value)
        if any(hasattr(kind, method) for method in _RESOURCE_METHODS):
            # A live resource (client, session, connection, file, lock): its state changes as it is used, so it
            # would make the key of the same work differ between attempts. It is keyed by its type only.
            return {'__resource__': _qualified_name(kind)}
        state: dict[str, Any] = {}
        instance_dict = getattr(value, '__dict__', None)
        if isinstance(instance_dict, dict):
            state.update(cast(dict[str, Any], instance_dict))
        for slot in getattr(_type_of(value), '__slots__', ()):
            if isinstance(slot, str) and hasattr(value, slot):
                state[slot] = getattr(value, slot)
        result: dict[str, Any] = {'__object__': _qualified_name(_type_of(value))}
        if state:
            result['state'] = {key: self.visit(item, depth) for key, item in state.items()}
        return result


@dataclass
class InputsByValue(CachePolicy):
    """Cache key part: the task's arguments, by value (see [`canonical_value`][durable_prefect.canonical_value])."""

    def compute_key(
        self,
        task_ctx: TaskRunContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        """Hash the task's arguments by value.

        Args:
            task_ctx: The task run context.
            inputs: The task's arguments.
            flow_parameters: The flow's parameters (not used).
            **kwargs: Other arguments Prefect may pass.

        Returns:
            The key, or `None` for a task without arguments.
        """
        if not inputs:
            return None
        return value_key(inputs)


@dataclass
class AgentRunScope(CachePolicy):
    """Cache key part: which agent run this is, stable across retries and resumption of that run.

    Inside an agent's own flow (a subflow of the caller's flow), the run is identified by the caller's task run
    that tracks the subflow: when the caller's flow is retried, Prefect creates a fresh subflow run but keeps
    that tracking task run, so completed model and tool tasks are found again. A top-level flow run (or a
    resumed one) keeps its flow run id.
    """

    def compute_key(
        self,
        task_ctx: TaskRunContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        """The agent run's stable identity.

        Args:
            task_ctx: The task run context.
            inputs: The task's arguments (not used).
            flow_parameters: The flow's parameters (not used).
            **kwargs: Other arguments Prefect may pass.

        Returns:
            The key, or `None` outside any task run.
        """
        if not task_ctx:
            return None
        flow_run_id = task_ctx.task_run.flow_run_id
        flow_ctx = FlowRunContext.get()
        flow_run = flow_ctx.flow_run if flow_ctx is not None else None
        if flow_run is not None and flow_run.id == flow_run_id and flow_run.parent_task_run_id is not None:
            return f'subflow:{flow_run.parent_task_run_id}'
        return f'flow:{flow_run_id or task_ctx.task_run.id}'


DEFAULT_CACHE_POLICY: CachePolicy = InputsByValue() + TASK_SOURCE + AgentRunScope()
"""The default cache policy of every task a durable agent creates: arguments by value + task source + agent run."""
