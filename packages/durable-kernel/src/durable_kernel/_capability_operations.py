"""Capability operations: the methods a capability declares durable with `@durable_operation(name)` (pydantic-ai 2.68+).

pydantic-ai's decorator replaces the method with one that asks the run for a dispatcher of `(capability id, name)`
and, without one, calls the method where it is called. A durability capability installs those dispatchers before the
run starts (`install_operation_dispatchers`, from the `_prepare_run_context` hook pydantic-ai calls on every
capability); inside the engine's workflow or flow a call then becomes a durable unit of its own, named as pydantic-ai
2.78 names it for the same agent (Temporal `agent__{name}__capability__{id}__{operation}`), and workflow code gets
the recorded result. Outside the workflow or flow, or inside another unit (a tool's activity), the method runs where
it is called, as without durability.

What crosses the boundary is data: the call's arguments by parameter name (the run context and `self` left out), each
dumped as JSON by its annotation and validated back by it inside the unit, and the result as
`CapabilityOperationOutcome` (`value` and the `usage_delta` the operation added to the run's usage, pydantic-ai's own
result's fields). The engine-agnostic half is here; each engine runs `run_operation_in_unit` in its unit.

Rules (pydantic-ai 2.78's): a capability with operations needs an `id` (it names the units, which are persisted
data), unless its class opts out (then it binds none); two operations of one capability may not share a name; hooks
that take a handler, a live stream or return a live object (`wrap_*`, `wrap_run_event_stream`, `get_toolset`,
`get_wrapper_toolset`, `get_wrapper_model`, `get_workspace`) cannot be operations.

An operation that takes a request's `ModelRequestContext` (a durable `before_model_request`, `after_model_request`,
...) gets it across as `RequestContextProjection` (its data, the live model named by its key), and the unit rebuilds
the context around the model the engine resolves for it. One that returns the context (`before_model_request`, or any
method of its own that takes one and is not a hook returning something else) sends it back as a projection too, which
workflow code applies to the caller's live context, as the hook's own change in place would have been: messages,
settings, parameters, the model (by its key: a hook that swaps in a model instance must use a registered one).
An engine that transports these opts in (`model_request_operations=True`); elsewhere they run where they are called.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Awaitable, Callable, Generator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, cast, get_type_hints

from pydantic import TypeAdapter
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models import Model, ModelRequestContext, ModelRequestParameters
from pydantic_ai.tools import RunContext
from pydantic_ai.usage import RunUsage

from ._compat import (
    DurableOperationMarker,
    agent_root_capability,
    durable_operation_marker,
    durable_operations_need_id,
    run_capabilities_by_id,
    run_durable_operations,
    set_current_run_context,
)

__all__ = (
    'CapabilityOperation',
    'CapabilityOperationOutcome',
    'OperationUnit',
    'capability_operations',
    'OperationDispatch',
    'RequestContextProjection',
    'RequestModelResolver',
    'install_operation_dispatchers',
    'operation_capability',
    'operation_unit_models',
    'run_operation_in_unit',
)

_NEVER_DURABLE: dict[str, str] = {
    **{
        hook: 'it takes a handler callable, which cannot cross into a durable unit'
        for hook in (
            'wrap_run',
            'wrap_node_run',
            'wrap_model_request',
            'wrap_tool_validate',
            'wrap_tool_execute',
            'wrap_output_validate',
            'wrap_output_process',
        )
    },
    'wrap_run_event_stream': 'it takes a live event stream',
    'get_toolset': 'it returns a live toolset',
    'get_wrapper_toolset': 'it returns a live toolset',
    'get_wrapper_model': 'it returns a live model',
    'get_workspace': 'it returns a live workspace',
}
"""Hooks that cannot be durable operations, with why (pydantic-ai 2.78 refuses the same ones)."""


@dataclass
class CapabilityOperationOutcome:
    """What a capability operation's unit returns (field names are wire format: pydantic-ai 2.78's result's).

    Attributes:
        value: The operation's return value, dumped as JSON by its annotation.
        usage_delta: The usage the operation added to the run's usage inside the unit (a model it called), added to
            the run's usage in workflow code.
    """

    value: Any
    usage_delta: RunUsage = field(default_factory=RunUsage)


@dataclass
class RequestContextProjection:
    """A model request's `ModelRequestContext` as data, to cross into a durable unit and back.

    Wire format: the field names are pydantic-ai 2.78's for the same data. The live model does not cross: `model_id` names it (`None`: the model the engine's unit uses by default), and the
    unit rebuilds the context around the model the engine resolves.

    Attributes:
        messages: The request's messages.
        model_settings: The request's model settings.
        model_request_parameters: The request's parameters (tools, output mode, ...).
        model_id: The string the request's model was selected by (`ModelRequestContext.model_id`), or the key of the
            model a hook inside the unit swapped in.
        streaming: Whether the request streams.
        attempt: Which attempt at the request step this is.
    """

    messages: list[ModelMessage]
    model_settings: dict[str, Any] | None = None
    model_request_parameters: ModelRequestParameters = field(default_factory=ModelRequestParameters)
    model_id: str | None = None
    streaming: bool = False
    attempt: int = 1

    @classmethod
    def of(cls, context: ModelRequestContext) -> RequestContextProjection:
        """The data of a live request context (pydantic-ai 2.68+ has `model_id`, `streaming` and `attempt` on it)."""
        model_id: Any = getattr(context, 'model_id', None)
        return cls(
            messages=list(context.messages),
            model_settings=cast('dict[str, Any] | None', context.model_settings),
            model_request_parameters=context.model_request_parameters,
            model_id=model_id if isinstance(model_id, str) else None,
            streaming=bool(getattr(context, 'streaming', False)),
            attempt=int(getattr(context, 'attempt', 1)),
        )

    def context_for(self, model: Model) -> ModelRequestContext:
        """A live request context around `model`, inside the unit."""
        context = ModelRequestContext(
            model=model,
            messages=self.messages,
            model_settings=cast(Any, self.model_settings),
            model_request_parameters=self.model_request_parameters,
        )
        self._set_request_fields(context)
        return context

    def apply_to(self, context: ModelRequestContext, model: Model | None = None) -> None:
        """Make the caller's live `context` what the unit's hook left its copy as (`model`: the one it swapped in)."""
        if model is not None:
            context.model = model
        context.messages = self.messages
        context.model_settings = cast(Any, self.model_settings)
        context.model_request_parameters = self.model_request_parameters
        self._set_request_fields(context)

    def _set_request_fields(self, context: ModelRequestContext) -> None:
        fields = cast(Any, context)
        fields.model_id = self.model_id
        fields.streaming = self.streaming
        fields.attempt = self.attempt


RequestModelResolver = Callable[[RunContext[Any], 'str | None'], Awaitable[Model]]
"""Resolves, in workflow or flow code, the model a durable hook's returned request context names by `model_id`."""


def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return _cached_adapter(annotation) if _hashable(annotation) else TypeAdapter(annotation)


@functools.lru_cache(maxsize=256)
def _cached_adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


@dataclass(frozen=True)
class CapabilityOperation:
    """One durable operation of one capability of an agent, as collected when the durability capability binds.

    Attributes:
        capability_id: The capability's `id` (part of the unit's name).
        name: The operation's name (`@durable_operation(name)`, part of the unit's name).
        method_name: The attribute the operation is on, to find the run's own implementation (a `for_run` copy).
        function: The undecorated method, unbound.
        signature: Its signature without `self`.
        ctx_parameter: The parameter that takes the run context, if any (it does not cross: the unit has its own).
        hints: The parameters' annotations (and `return`'s).
        model_request_parameter: The parameter that takes a `ModelRequestContext`, if any (it crosses as a
            `RequestContextProjection`).
        returns_request_context: Whether the operation returns the request context it takes (a `before_model_request`
            does; a hook that returns something else, `after_model_request`'s response, does not), sent back as a
            projection and applied to the caller's context.
    """

    capability_id: str
    name: str
    method_name: str
    function: Callable[..., Awaitable[Any]]
    signature: inspect.Signature
    ctx_parameter: str | None
    hints: Mapping[str, Any]
    model_request_parameter: str | None = None
    returns_request_context: bool = False

    @property
    def result_type(self) -> Any:
        """What the operation's unit returns: its declared return type (`Any` when it declares none), a projection."""
        if self.returns_request_context:
            return RequestContextProjection
        return self.hints.get('return', Any)

    def _annotation(self, name: str) -> Any:
        # The request context crosses as its projection (the live model stays behind).
        return RequestContextProjection if name == self.model_request_parameter else self.hints.get(name, Any)

    def body(self, capability: AbstractCapability[Any]) -> Callable[..., Awaitable[Any]]:
        """The method `capability` (the run's instance, possibly a `for_run` subclass) implements, bound, undecorated."""
        member: Any = getattr(type(capability), self.method_name, self.function)
        marker = durable_operation_marker(member)
        function = marker.function if marker is not None and marker.function is not None else member
        return cast('Callable[..., Awaitable[Any]]', function.__get__(capability, type(capability)))

    def wire_arguments(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """A call's arguments by parameter name, as JSON data by their annotations (the run context left out).

        `*args` crosses as a list under its name; `**kwargs` entries cross as arguments of their own.
        """
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        wire: dict[str, Any] = {}
        for name, argument in bound.arguments.items():
            if name == self.ctx_parameter:
                continue
            parameter = self.signature.parameters[name]
            annotation = self._annotation(name)
            value: Any = argument
            if name == self.model_request_parameter and isinstance(argument, ModelRequestContext):
                value = RequestContextProjection.of(argument)
            if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
                wire[name] = _adapter(list[annotation]).dump_python(list(value), mode='json')
            elif parameter.kind is inspect.Parameter.VAR_KEYWORD:
                adapter = _adapter(annotation)
                wire.update({key: adapter.dump_python(item, mode='json') for key, item in value.items()})
            else:
                wire[name] = _adapter(annotation).dump_python(value, mode='json')
        return wire

    def request_projection(self, wire: Mapping[str, Any]) -> RequestContextProjection | None:
        """The request context a call sent, as its projection (`None` for an operation that takes none)."""
        if self.model_request_parameter is None or self.model_request_parameter not in wire:
            return None
        return _adapter(RequestContextProjection).validate_python(wire[self.model_request_parameter])

    def call_arguments(
        self, wire: Mapping[str, Any], ctx: RunContext[Any], request_context: ModelRequestContext | None = None
    ) -> tuple[list[Any], dict[str, Any]]:
        """The positional and keyword arguments to call the method with inside the unit, validated by annotation.

        Args:
            wire: The arguments `wire_arguments` sent.
            ctx: The unit's run context.
            request_context: The request context rebuilt inside the unit, for an operation that takes one.
        """
        remaining = dict(wire)
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for name, parameter in self.signature.parameters.items():
            annotation = self.hints.get(name, Any)
            if name == self.ctx_parameter:
                value: Any = ctx
            elif name == self.model_request_parameter and request_context is not None:
                remaining.pop(name, None)
                value = request_context
            elif parameter.kind is inspect.Parameter.VAR_POSITIONAL:
                args.extend(_adapter(list[annotation]).validate_python(remaining.pop(name, [])))
                continue
            elif parameter.kind is inspect.Parameter.VAR_KEYWORD:
                adapter = _adapter(annotation)
                kwargs.update({key: adapter.validate_python(item) for key, item in remaining.items()})
                remaining.clear()
                continue
            elif name in remaining:
                value = _adapter(annotation).validate_python(remaining.pop(name))
            else:
                continue  # a default the recording side did not send (an older caller): the method's own applies
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY:
                kwargs[name] = value
            else:
                args.append(value)
        return args, kwargs

    def dump_result(self, value: Any) -> Any:
        """The operation's return value as JSON data by its declared return type."""
        return _adapter(self.result_type).dump_python(value, mode='json')

    def load_result(self, data: Any) -> Any:
        """The value a unit recorded, validated back into the declared return type."""
        return _adapter(self.result_type).validate_python(data)


def _annotation_is(annotation: Any, cls: type[Any]) -> bool:
    origin = getattr(annotation, '__origin__', None)
    return annotation is cls or origin is cls or (isinstance(annotation, type) and issubclass(annotation, cls))


def _declaration(
    capability: AbstractCapability[Any], capability_id: str, name: str, method_name: str, function: Any
) -> CapabilityOperation:
    signature = inspect.signature(function)
    parameters = list(signature.parameters.values())[1:]  # without `self`
    hints = get_type_hints(function, include_extras=True)
    ctx_parameter = next((p.name for p in parameters if _annotation_is(hints.get(p.name), RunContext)), None)
    request_parameter = next(
        (p.name for p in parameters if _annotation_is(hints.get(p.name), ModelRequestContext)), None
    )
    returns_request_context = False
    if request_parameter is not None:
        # An override of a built-in hook returns what the hook returns, whatever its own annotation says (the
        # response, for `after_model_request`); any other method that takes the request context returns the context.
        hook_return = _hook_return(method_name)
        returns_request_context = hook_return is None or _annotation_is(hook_return, ModelRequestContext)
        if hook_return is not None and not returns_request_context:
            hints = {**hints, 'return': hook_return}
    return CapabilityOperation(
        capability_id=capability_id,
        name=name,
        method_name=method_name,
        function=function,
        signature=signature.replace(parameters=parameters),
        ctx_parameter=ctx_parameter,
        hints=hints,
        model_request_parameter=request_parameter,
        returns_request_context=returns_request_context,
    )


def _hook_return(method_name: str) -> Any:
    """What the built-in capability hook named `method_name` returns (`None`: no such hook)."""
    hook = vars(AbstractCapability).get(method_name)
    if not inspect.isfunction(hook):
        return None
    try:
        return get_type_hints(hook, localns={'ModelRequestContext': ModelRequestContext}).get('return')
    except Exception:  # a forward reference this pydantic-ai cannot resolve: read as not a hook's
        return None


def _markers(capability: AbstractCapability[Any]) -> dict[str, tuple[str, Any]]:
    """The capability's operations as `{operation: (attribute, undecorated function)}`, checked by pydantic-ai's rules."""
    cls = type(capability)
    found: dict[str, tuple[str, Any]] = {}

    def add(name: str, method_name: str, function: Any) -> None:
        if name in found:
            raise UserError(
                f'Two durable operations of the capability {type(capability).__name__!r} ({capability.id!r}) are '
                f"named {name!r}: the name is part of the durable unit's name, so give each its own "
                "`@durable_operation(name='...')`."
            )
        found[name] = (method_name, function)

    # A base hook marked durable makes every override an operation (the override carries no marker of its own).
    for base in cls.__mro__[1:]:
        for method_name, member in vars(base).items():
            marker = durable_operation_marker(member)
            if marker is not None and marker.base_hook and getattr(cls, method_name, None) is not member:
                add(marker.name, method_name, getattr(cls, method_name))
    for method_name, member in inspect.getmembers(cls):
        marker = durable_operation_marker(member)
        if marker is None or (marker.base_hook and member is marker.function):
            continue
        if (reason := _NEVER_DURABLE.get(method_name)) is not None:
            raise UserError(
                f'`{type(capability).__name__}.{method_name}` cannot be a durable operation: {reason}. Remove its '
                '`@durable_operation` and make durable the I/O it does, in a method of its own.'
            )
        add(marker.name, method_name, _undecorated(marker, member))
    return found


def _undecorated(marker: DurableOperationMarker, member: Any) -> Any:
    return marker.function if marker.function is not None else member


def _leaves(root: AbstractCapability[Any]) -> list[AbstractCapability[Any]]:
    leaves: list[AbstractCapability[Any]] = []
    root.apply(leaves.append)
    return leaves


def capability_operations(root: AbstractCapability[Any]) -> dict[tuple[str, str], CapabilityOperation]:
    """The durable operations of the capabilities in an agent's capability tree, by `(capability id, operation)`.

    Raises:
        UserError: A capability with operations has no `id` (and its class does not opt out), two of its
            operations share a name, a hook that cannot be an operation is marked, or two capabilities with
            operations share an id.
    """
    operations: dict[tuple[str, str], CapabilityOperation] = {}
    owners: dict[str, AbstractCapability[Any]] = {}
    for capability in _leaves(root):
        markers = _markers(capability)
        if not markers:
            continue
        capability_id = capability.id
        if capability_id is None:
            if not durable_operations_need_id(capability):
                continue  # the class refuses its own id-less durable runs (pydantic-ai's rule)
            raise UserError(
                f'The capability {type(capability).__name__!r} has durable operations, so it needs an `id`, the same '
                'in every deploy: it names their durable units (persisted data) and finds the capability again '
                f"inside them. Construct it as `{type(capability).__name__}(id='...')`."
            )
        if (owner := owners.get(capability_id)) is not None and owner is not capability:
            raise UserError(
                f'Two capabilities with durable operations have the id {capability_id!r}: their units would share '
                'names. Give each its own `id`.'
            )
        owners[capability_id] = capability
        for name, (method_name, function) in markers.items():
            operations[(capability_id, name)] = _declaration(capability, capability_id, name, method_name, function)
    return operations


OperationUnit = Callable[[CapabilityOperation, RunContext[Any], dict[str, Any]], Awaitable[CapabilityOperationOutcome]]
"""Runs an operation's durable unit from workflow code: `(operation, run context, wire arguments) -> outcome`."""


def install_operation_dispatchers(
    ctx: RunContext[Any],
    operations: Mapping[tuple[str, str], CapabilityOperation],
    *,
    unit: OperationUnit,
    in_durable_context: Callable[[], bool],
    model_request_operations: bool = False,
    resolve_model: RequestModelResolver | None = None,
) -> None:
    """Install the run's dispatcher of each durable operation on `ctx`, where pydantic-ai's decorator looks for them.

    A call made inside the durable context (workflow or flow code) becomes the operation's unit; anywhere else (outside
    it, or inside another unit) the run's capability runs the method where it is called.

    Args:
        ctx: The run's context.
        operations: The agent's durable operations.
        unit: Runs an operation's unit from workflow or flow code.
        in_durable_context: Whether the caller is workflow or flow code.
        model_request_operations: Whether the engine's unit takes operations on a request's `ModelRequestContext`
            (it resolves the model the projection names); without it they are not installed and run where called.
        resolve_model: Resolves the model a returned request context names when the hook swapped the model; without
            it such a swap is refused.

    Raises:
        UserError: A capability with operations is missing from the run (a `for_run` replacement changed its `id`).
    """
    dispatchers = run_durable_operations(ctx)
    if dispatchers is None or not operations:
        return
    run_capabilities = run_capabilities_by_id(ctx)
    missing = sorted({capability_id for capability_id, _ in operations} - set(run_capabilities))
    if missing:
        raise UserError(
            f'The capability with id {", ".join(map(repr, missing))} has durable operations but is not in this run: '
            "a `for_run` replacement has to keep the capability's `id`, which names the operations' durable units."
        )
    for key, operation in operations.items():
        if operation.model_request_parameter is not None and not model_request_operations:
            continue
        capability = run_capabilities[key[0]]

        async def dispatch(
            call_ctx: RunContext[Any],
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
            _operation: CapabilityOperation = operation,
            _capability: AbstractCapability[Any] = capability,
        ) -> Any:
            if not in_durable_context():
                return await _operation.body(_capability)(*args, **kwargs)
            wire = _operation.wire_arguments(args, kwargs)
            outcome = await unit(_operation, call_ctx, wire)
            # What the operation's own model calls used inside the unit counts for the run, as without durability.
            call_ctx.usage.incr(outcome.usage_delta)
            value = _operation.load_result(outcome.value)
            if not _operation.returns_request_context:
                return value
            return await _apply_returned_context(_operation, call_ctx, args, kwargs, value, resolve_model)

        dispatchers[key] = dispatch


async def _apply_returned_context(
    operation: CapabilityOperation,
    ctx: RunContext[Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    returned: RequestContextProjection,
    resolve_model: RequestModelResolver | None,
) -> ModelRequestContext:
    """Apply the request context a unit's hook returned to the caller's live one, and return that (as the hook would)."""
    bound = operation.signature.bind(*args, **kwargs)
    live = bound.arguments.get(cast(str, operation.model_request_parameter))
    if not isinstance(live, ModelRequestContext):
        raise UserError(
            f'The durable operation {operation.capability_id}.{operation.name} takes a `ModelRequestContext` but was '
            'called without one: pass the request context the hook got.'
        )
    model: Model | None = None
    if returned.model_id != RequestContextProjection.of(live).model_id:
        # The hook swapped the model inside the unit: it came back by its key, resolved here again.
        if resolve_model is None:
            raise UserError(
                f"The durable operation {operation.capability_id}.{operation.name} replaced the request's model, "
                'which this engine cannot resolve again in workflow code: select the model outside the durable hook.'
            )
        model = await resolve_model(ctx, returned.model_id)
    returned.apply_to(live, model)
    return live


async def operation_capability(ctx: RunContext[Any], capability_id: str) -> AbstractCapability[Any]:
    """The capability whose operation a unit runs: the run's with that `id`, else the agent's, made for the run.

    Raises:
        UserError: The agent in this process has no (or several) capabilities with that id: the worker runs other
            code than the one that recorded the run.
    """
    # In the run's process (DBOS, Prefect) the unit's context is the run's own, with the run's capabilities.
    if (run_capability := run_capabilities_by_id(ctx).get(capability_id)) is not None:
        return run_capability
    agent: Any = getattr(ctx, 'agent', None)
    root = agent_root_capability(agent) if agent is not None else None
    matches = [c for c in _leaves(root) if c.id == capability_id] if root is not None else []
    if len(matches) != 1:
        raise UserError(
            f'A durable capability operation of the capability {capability_id!r} ran, but the agent in this process '
            f'has {len(matches)} capabilities with that id: run the same agent code in every process.'
        )
    capability = matches[0]
    if type(capability).for_run is AbstractCapability.for_run:
        return capability
    return await capability.for_run(ctx)


@dataclass(frozen=True)
class _UnitModels:
    resolve: Callable[[RunContext[Any], str | None], Awaitable[Model]]
    key: Callable[[Model], str | None]


_UNIT_MODELS: ContextVar[_UnitModels | None] = ContextVar('durable_kernel_operation_unit_models', default=None)


@contextmanager
def operation_unit_models(
    resolve: Callable[[RunContext[Any], str | None], Awaitable[Model]], key: Callable[[Model], str | None]
) -> Generator[None]:
    """Around a unit whose function cannot take them: how `run_operation_in_unit` resolves and names models.

    For an engine whose unit function's source is persisted data (a Prefect task's source keys its cache): the unit
    runs in this context, and an operation on a request context rebuilds it around `resolve(ctx, model_id)`.
    """
    token = _UNIT_MODELS.set(_UnitModels(resolve, key))
    try:
        yield
    finally:
        _UNIT_MODELS.reset(token)


async def run_operation_in_unit(
    operation: CapabilityOperation,
    ctx: RunContext[Any],
    wire: Mapping[str, Any],
    *,
    model: Model | None = None,
    model_key: Callable[[Model], str | None] | None = None,
    run_model: Model | None = None,
) -> CapabilityOperationOutcome:
    """Run a capability operation inside its unit with the unit's run context; what the unit returns.

    Args:
        operation: The operation (found by the unit's name).
        ctx: The run context rebuilt inside the unit (its `agent` set).
        wire: The arguments `wire_arguments` sent.
        model: For an operation on a request context: the model the engine resolved for the projection's `model_id`,
            which the context is rebuilt around.
        model_key: The key of a registered model (`None`: the default), for a hook that swaps the request's model;
            raises `UserError` for a model that is not registered.
        run_model: The model the unit's run context gets (an engine whose unit rebuilds the run context; one that
            runs the unit in the run's process leaves the run's own).

    Raises:
        UserError: An operation on a request context got no model, or its hook swapped in a model `model_key` cannot
            name.
    """
    capability = await operation_capability(ctx, operation.capability_id)
    if run_model is not None:
        ctx.model = run_model
    request_context: ModelRequestContext | None = None
    if (projection := operation.request_projection(wire)) is not None:
        if model is None and (ambient := _UNIT_MODELS.get()) is not None:
            model = await ambient.resolve(ctx, projection.model_id)
            model_key = model_key or ambient.key
        if model is None:
            raise UserError(
                f'The durable operation {operation.capability_id}.{operation.name} takes a `ModelRequestContext`, '
                'which this engine does not rebuild inside its unit.'
            )
        request_context = projection.context_for(model)
    args, kwargs = operation.call_arguments(wire, ctx, request_context)
    before = copy.copy(ctx.usage)
    # Set as the current run context: a nested operation call finds no dispatcher in it and runs here, in this unit.
    with set_current_run_context(ctx):
        value = await operation.body(capability)(*args, **kwargs)
    delta = cast('Any', ctx.usage) - before
    if operation.returns_request_context:
        value = _returned_projection(operation, value, model, model_key)
    return CapabilityOperationOutcome(value=operation.dump_result(value), usage_delta=delta)


def _returned_projection(
    operation: CapabilityOperation,
    value: Any,
    model: Model | None,
    model_key: Callable[[Model], str | None] | None,
) -> RequestContextProjection:
    if not isinstance(value, ModelRequestContext):
        raise UserError(
            f'The durable operation {operation.capability_id}.{operation.name} must return the `ModelRequestContext` '
            f'it takes, not {type(value).__name__}.'
        )
    projection = RequestContextProjection.of(value)
    if value.model is not model:
        # A live model cannot go back: the hook's choice is sent by its key, which workflow code resolves again.
        if model_key is None:
            raise UserError(
                f"The durable operation {operation.capability_id}.{operation.name} replaced the request's model, "
                'which cannot cross back to workflow code on this engine.'
            )
        projection.model_id = model_key(value.model)
    return projection


class OperationDispatch(AbstractCapability[Any]):
    """A run capability that installs the dispatchers of the agent's durable operations (the wrapper agents' runs).

    The capability form installs them itself (`DurabilityCapability`); a wrapper agent adds this to its runs in the
    durable context, as it adds `CountInRunContext`.
    """

    def __init__(
        self,
        operations: Mapping[tuple[str, str], CapabilityOperation],
        *,
        unit: OperationUnit,
        in_durable_context: Callable[[], bool],
        model_request_operations: bool = False,
        resolve_model: RequestModelResolver | None = None,
    ) -> None:
        self._operations = operations
        self._unit = unit
        self._in_durable_context = in_durable_context
        self._model_request_operations = model_request_operations
        self._resolve_model = resolve_model

    def _prepare_run_context(self, ctx: RunContext[Any]) -> None:
        # pydantic-ai 2.68+ calls this on every capability of the run before `wrap_run`.
        install_operation_dispatchers(
            ctx,
            self._operations,
            unit=self._unit,
            in_durable_context=self._in_durable_context,
            model_request_operations=self._model_request_operations,
            resolve_model=self._resolve_model,
        )

    @classmethod
    def get_serialization_name(cls) -> str | None:
        """Not loadable from an agent spec: added by the wrapper agents to their own runs."""
        return None
