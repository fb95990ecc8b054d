"""Which run-context fields cross a durable boundary, and how they are rebuilt on the other side."""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any, ClassVar, cast, get_origin

from pydantic_ai.exceptions import UserError
from pydantic_ai.tools import RunContext
from typing_extensions import Self, TypeVar

from ._compat import ACTIVE_CAPABILITIES_SNAPSHOT, CAPABILITY_STATE_FIELD, field_default, translate_run_context_fields
from ._deps_resolver import DepsResolver, reference_deps, resolve_deps

if TYPE_CHECKING:
    from pydantic_ai.agent import AbstractAgent

__all__ = (
    'AVAILABILITY_SNAPSHOTS',
    'RUN_CONTEXT_FIELDS',
    'PartialRunContext',
    'rebuild_run_context',
    'with_deps_resolver',
)

AgentDepsT = TypeVar('AgentDepsT', default=None, covariant=True)
ContextT = TypeVar('ContextT', bound='PartialRunContext[Any]')

AVAILABILITY_SNAPSHOTS: tuple[str, ...] = tuple(
    name
    for name in ('available_tool_names', ACTIVE_CAPABILITIES_SNAPSHOT, '_deferred_capability_ids')
    if hasattr(RunContext, name)
)
"""Run-context properties whose value, computed where the run is, crosses a durable boundary (where the installed
pydantic-ai has them): `available_tool_names`, `available_capability_ids` (`active_capability_ids` from pydantic-ai
2.68) and, on 2.x, the private `_deferred_capability_ids`.

They are answers, not data: the run computes them from live state that stays behind (the tool manager and the
capability registry), so the unit on the other side reads what they were when it was dispatched. Without them a tool
revealed during the run would read as unavailable there (`available_tool_names` falls back to
`discovered_tool_names`, which misses always-visible tools) and `available_capability_ids` (hence `is_tool_available`
for a capability's tool) would raise. The keys are those pydantic-ai's own Temporal integration sends.
"""

RUN_CONTEXT_FIELDS: tuple[str, ...] = (
    'run_id',
    'metadata',
    'retries',
    'tool_call_id',
    'tool_name',
    'tool_call_approved',
    'tool_call_metadata',
    'retry',
    'max_retries',
    'run_step',
    'usage',
    'partial_output',
    'loaded_capability_ids',
    'discovered_tool_names',
    CAPABILITY_STATE_FIELD,
    # Fields of newer pydantic-ai releases, sent where the installed line has them (see `_LINE_FIELDS`).
    *(
        name
        for name in (
            'conversation_id',
            'trace_include_content',
            'instrumentation_version',
            'usage_limits',
            '_anchored_evidence',
        )
        if name in {f.name for f in fields(RunContext)}
    ),
    *AVAILABILITY_SNAPSHOTS,
)
"""The [`RunContext`][pydantic_ai.tools.RunContext] fields that cross a durable boundary by default (`deps` travels separately).

These are plain data. Live objects (the model, the tracer, the tool manager, the capability registry, the
message list) are left behind: they cannot be serialized, and the work on the other side does not need them.
`capability_loaded` is `capability_active` on pydantic-ai 2.x (its successor); a context recorded on one line is read
on the other under the installed line's name. `conversation_id`, `trace_include_content`, `instrumentation_version`,
`usage_limits` and `_anchored_evidence` (the reveal evidence `is_tool_available` reads) are sent where the installed
pydantic-ai has them. The [`AVAILABILITY_SNAPSHOTS`][durable_kernel.AVAILABILITY_SNAPSHOTS] close the tuple: properties
whose value at dispatch time is sent.
"""

_ALL_FIELDS = {f.name: f for f in fields(RunContext)}

_NONE_UNLESS_ATTACHED: tuple[str, ...] = tuple(
    name for name in ('agent', 'tool_manager', 'realtime_session') if name in _ALL_FIELDS
)
# Live objects that never cross, read as `None` on the other side rather than raising: `agent` is re-attached by
# `rebuild_run_context`; `None` is what pydantic-ai itself documents for `tool_manager` outside the agent loop (then
# `available_tool_names` and `is_tool_available` answer from `discovered_tool_names`) and for `realtime_session`.


def _rehydrators() -> tuple[tuple[str, type[Any], Callable[[Any], Any]], ...]:
    # An engine whose converter has no type to decode against (Temporal's JSON: the serialized context is `Any`)
    # hands sets back as lists and dataclasses as dicts. Rebuilt here, so that code on the other side gets what it
    # would get in a run that is not durable (`ctx.loaded_capability_ids.add(...)`, `set | frozenset`, usage checks).
    from pydantic import TypeAdapter
    from pydantic_ai.usage import RunUsage

    str_set: TypeAdapter[set[str]] = TypeAdapter(set[str])
    out: list[tuple[str, type[Any], Callable[[Any], Any]]] = [
        ('usage', dict, TypeAdapter(RunUsage).validate_python),
        ('loaded_capability_ids', list, str_set.validate_python),
        ('discovered_tool_names', list, str_set.validate_python),
        *((name, list, str_set.validate_python) for name in AVAILABILITY_SNAPSHOTS),
    ]
    if 'usage_limits' in _ALL_FIELDS:
        from pydantic_ai.usage import UsageLimits

        out.append(('usage_limits', dict, TypeAdapter(UsageLimits).validate_python))
    anchored = _ALL_FIELDS.get('_anchored_evidence')
    if anchored is not None:
        evidence_type: type[Any] = type(field_default(anchored))  # pyright: ignore[reportUnknownVariableType]
        out.append(('_anchored_evidence', dict, TypeAdapter(evidence_type).validate_python))
    return tuple(out)


_REHYDRATORS = _rehydrators()

# `dataclasses.replace(ctx, ...)` (toolsets derive per-tool contexts with it) copies the declared fields only: the
# snapshots are declared too (see `PartialRunContext.__init__`), so that a copy made inside the unit keeps them.
_SNAPSHOT_FIELDS: dict[str, dataclasses.Field[Any]] = {
    f.name: f
    for f in dataclasses.fields(
        dataclasses.make_dataclass(
            '_AvailabilitySnapshots', [(name, Any, dataclasses.field(default=None)) for name in AVAILABILITY_SNAPSHOTS]
        )
    )
}
# Public fields must have been sent to be read. Private ones (pydantic-ai 2.x has a dozen, `_tool_name_path`, ...) are
# pydantic-ai's own bookkeeping, which its tool path reads: an unsent one reads as its default, as on a new context.
_RUN_CONTEXT_FIELD_NAMES: frozenset[str] = frozenset(name for name in _ALL_FIELDS if not name.startswith('_'))
_PRIVATE_DEFAULTS = {
    name: f for name, f in _ALL_FIELDS.items() if name.startswith('_') and name not in _RUN_CONTEXT_FIELD_NAMES
}


_UNREADABLE = object()


def _read(ctx: RunContext[Any], name: str) -> Any:
    if name not in _SNAPSHOT_FIELDS:
        return getattr(ctx, name)
    try:
        return getattr(ctx, name)
    except UserError:
        # A snapshot is computed from live state: a context that was itself rebuilt without it (a unit handing its
        # context on) sends none, and the next side falls back as pydantic-ai does without a tool manager.
        return _UNREADABLE


class PartialRunContext(RunContext[AgentDepsT]):
    """A [`RunContext`][pydantic_ai.tools.RunContext] rebuilt from the subset of fields that crossed a durable boundary.

    Reading a `RunContext` field that was not sent raises a [`UserError`][pydantic_ai.exceptions.UserError] whose
    message ends with [`unavailable_field_hint`][durable_kernel.PartialRunContext.unavailable_field_hint], so an
    engine package can tell its users how to send more fields (typically: subclass and override
    [`serialize_run_context`][durable_kernel.PartialRunContext.serialize_run_context]).
    """

    unavailable_field_hint: ClassVar[str] = (
        'To make it available, subclass the run context type, override `serialize_run_context` to include it, '
        'and pass the subclass to the durable agent.'
    )
    """The second half of the error raised when an unavailable field is read."""

    serialized_fields: ClassVar[tuple[str, ...]] = RUN_CONTEXT_FIELDS
    """The fields [`serialize_run_context`][durable_kernel.PartialRunContext.serialize_run_context] sends."""

    deps_resolver: ClassVar[DepsResolver[Any, Any] | None] = None
    """The agent's [`DepsResolver`][durable_kernel.DepsResolver], if any: `deps` cross as its reference.

    Set by the durable agents on a subclass of the context type they are given (see
    [`with_deps_resolver`][durable_kernel.with_deps_resolver]), not by hand.
    """

    def __init__(self, deps: AgentDepsT, **values: Any) -> None:
        # Deliberately not calling the dataclass __init__: only the fields that crossed the boundary exist, so that
        # reading any other one fails loudly (see __getattr__) instead of silently returning a default.
        values = translate_run_context_fields(values)
        for name, wire_type, rebuild in _REHYDRATORS:
            value = values.get(name)
            if isinstance(value, wire_type):
                values = {**values, name: rebuild(value)}
        self.__dict__.update(values)
        for name, private in _PRIVATE_DEFAULTS.items():
            if name not in self.__dict__:
                self.__dict__[name] = field_default(private)
        self.__dict__['deps'] = deps
        for name in _NONE_UNLESS_ATTACHED:
            self.__dict__.setdefault(name, None)
        # `dataclasses.replace(ctx, ...)` (toolsets use it to derive per-tool contexts) copies every declared field:
        # declare, on this instance, only the fields that crossed, so the copy never reads an unavailable one.
        self.__dict__['__dataclass_fields__'] = {
            name: f for name, f in (RunContext.__dataclass_fields__ | _SNAPSHOT_FIELDS).items() if name in self.__dict__
        }

    def _snapshot(self, name: str) -> Any:
        # The value sent at dispatch, else pydantic-ai's own answer from what did cross (a context sent by a custom
        # `serialize_run_context`, or by an older release, that lacks it): `available_tool_names` then answers from
        # `discovered_tool_names`, and the capability sets raise, naming the `capabilities` registry.
        snapshot = self.__dict__.get(name)
        if snapshot is not None:
            return snapshot
        return getattr(super(), name)

    @property
    def available_tool_names(self) -> set[str]:
        """The names of the tools available to the model, as they were when the unit was dispatched.

        The tool manager stays behind, so the run's answer is sent with the context (see
        [`AVAILABILITY_SNAPSHOTS`][durable_kernel.AVAILABILITY_SNAPSHOTS]).
        """
        return self._snapshot('available_tool_names')

    if ACTIVE_CAPABILITIES_SNAPSHOT == 'active_capability_ids':

        @property
        def active_capability_ids(self) -> set[str]:
            """The ids of the capabilities active in the run, as they were when the unit was dispatched.

            The capability registry stays behind (it holds live objects), so the run's answer is sent with the
            context. `available_capability_ids`, pydantic-ai's deprecated name, reads this.
            """
            return self._snapshot('active_capability_ids')

    else:

        @property
        def available_capability_ids(self) -> set[str]:
            """The ids of the capabilities available in the run, as they were when the unit was dispatched.

            The capability registry stays behind (it holds live objects), so the run's answer is sent with the
            context.
            """
            return self._snapshot('available_capability_ids')

    if '_deferred_capability_ids' in AVAILABILITY_SNAPSHOTS:

        @property
        def _deferred_capability_ids(self) -> set[str]:
            # pydantic-ai 2.x's `is_tool_available` reads which capabilities load on demand from the registry,
            # which stays behind: the run's answer is sent with the context.
            return self._snapshot('_deferred_capability_ids')

    def __getattribute__(self, name: str) -> Any:
        # `RunContext` fields with plain defaults (`retry = 0`, ...) are class attributes, so a missing one would
        # silently read as its default: check the instance dict for every dataclass field instead.
        if name in _RUN_CONTEXT_FIELD_NAMES and name not in object.__getattribute__(self, '__dict__'):
            cls = type(self)
            sent = sorted(k for k in object.__getattribute__(self, '__dict__') if k in _RUN_CONTEXT_FIELD_NAMES)
            raise UserError(
                f'`{cls.__name__}.{name}` is not available on this side of the durable boundary '
                f'(the fields sent are: {", ".join(sent)}). {cls.unavailable_field_hint}'
            )
        return super().__getattribute__(name)

    def __repr__(self) -> str:
        shown = ', '.join(f'{k}={v!r}' for k, v in self.__dict__.items() if k in _RUN_CONTEXT_FIELD_NAMES)
        return f'{type(self).__name__}({shown})'

    @classmethod
    def serialize_run_context(cls, ctx: RunContext[Any]) -> dict[str, Any]:
        """Turn a live run context into a plain dict of the fields that should cross the boundary.

        Override this (and keep the result serializable by your engine) to send more fields.

        Args:
            ctx: The live run context.

        Returns:
            The fields named by [`serialized_fields`][durable_kernel.PartialRunContext.serialized_fields].
        """
        return {name: value for name in cls.serialized_fields if (value := _read(ctx, name)) is not _UNREADABLE}

    @classmethod
    def serialize_deps(cls, deps: Any) -> Any:
        """What crosses the boundary in place of the live `deps`: the resolver's reference, else `deps` itself.

        Args:
            deps: The run's live dependencies.

        Returns:
            The value the engine sends (and stores).
        """
        return reference_deps(cls.deps_resolver, deps)

    @classmethod
    def deserialize_deps(cls, value: Any) -> Any:
        """The live deps for what [`serialize_deps`][durable_kernel.PartialRunContext.serialize_deps] sent.

        Args:
            value: What crossed the boundary.

        Returns:
            The resolver's `resolve(value)`, else `value` itself.
        """
        return resolve_deps(cls.deps_resolver, value)

    @classmethod
    def deserialize_run_context(cls, ctx: dict[str, Any], deps: Any) -> Self:
        """Rebuild a run context from the dict made by `serialize_run_context`.

        Args:
            ctx: The serialized fields.
            deps: The run's dependencies, which travel separately.

        Returns:
            A run context holding exactly those fields and `deps`.
        """
        return cls(deps, **ctx)


def rebuild_run_context(
    context_type: type[PartialRunContext[Any]],
    data: Mapping[str, Any],
    *,
    deps: Any,
    agent: AbstractAgent[Any, Any] | None = None,
) -> RunContext[Any]:
    """Rebuild a run context with a (possibly user-defined) context type and re-attach the agent.

    The agent is attached, and the deps resolved (see
    [`deserialize_deps`][durable_kernel.PartialRunContext.deserialize_deps]), here rather than in
    `deserialize_run_context` so that user subclasses overriding that method need not know about either.

    Args:
        context_type: The [`PartialRunContext`][durable_kernel.PartialRunContext] subclass to build.
        data: The serialized fields.
        deps: The run's dependencies, as they crossed the boundary.
        agent: The agent to expose as `ctx.agent`, if any.

    Returns:
        The rebuilt run context.
    """
    ctx = context_type.deserialize_run_context(dict(data), deps=context_type.deserialize_deps(deps))
    if agent is not None:
        cast(Any, ctx).__dict__['agent'] = agent
    return ctx


def with_deps_resolver(context_type: type[ContextT], resolver: DepsResolver[Any, Any] | None) -> type[ContextT]:
    """`context_type`, or a subclass of it (same name) whose `deps` cross as `resolver`'s reference.

    The context type already travels to every place that sends or rebuilds a run context (models, toolsets, a user's
    own toolset wrappers), so binding the resolver to it reaches all of them without another argument.

    Args:
        context_type: The run-context type given to the durable agent (possibly a user subclass or a generic alias).
        resolver: The agent's resolver; `None` returns `context_type` unchanged.

    Returns:
        The type to send and rebuild run contexts with.
    """
    if resolver is None:
        return context_type
    origin = cast('type[Any]', get_origin(context_type) or context_type)
    namespace = {'deps_resolver': resolver, '__module__': origin.__module__, '__qualname__': origin.__qualname__}
    return cast(
        'type[ContextT]', types.new_class(origin.__name__, (context_type,), exec_body=lambda ns: ns.update(namespace))
    )
