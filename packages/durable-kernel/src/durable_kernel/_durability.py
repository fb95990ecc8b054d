"""The engine-agnostic half of a durability capability (`Agent(..., capabilities=[XDurability()])`).

A durability capability is bound to one agent: binding names the agent's durable units and creates whatever the engine
registers up front (Temporal activities). pydantic-ai 2.x binds at `Agent(...)` through `for_agent`; 1.107 has no such
hook, so the same binding is made lazily and once per agent, by `from_agent` (which registration helpers call before a
worker or launch) or by `for_run` (the run's own agent). Either way the bound copy, not the user's instance, carries the
engine state, so one capability instance may serve several agents, as on 2.x.

Outside a workflow or flow every hook passes through: the capability changes nothing there.
"""

from __future__ import annotations

import copy
import functools
import weakref
from abc import abstractmethod
from collections.abc import AsyncIterable, Generator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ClassVar, cast

from pydantic_ai import messages as pai_messages
from pydantic_ai.agent import AbstractAgent, AgentRunResult, EventStreamHandler
from pydantic_ai.capabilities import AbstractCapability, CapabilityOrdering, ProcessEventStream, WrapperCapability
from pydantic_ai.capabilities.abstract import WrapModelRequestHandler, WrapRunHandler
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import KnownModelName, Model, ModelRequestContext, ModelRequestParameters, infer_model
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import AgentDepsT, RunContext
from pydantic_ai.usage import RequestUsage

from ._capability_operations import (
    CapabilityOperation,
    OperationUnit,
    RequestModelResolver,
    capability_operations,
    install_operation_dispatchers,
)
from ._compat import (
    COUNTS_TOKENS_BEFORE_REQUEST_HOOKS,
    HAS_DURABLE_OPERATIONS,
    PYDANTIC_AI_2,
    agent_root_capability,
    is_reference_durability,
    request_model_selection,
    resolve_model_id_by_capabilities,
)
from ._external_events import ExternalEventWait, external_events_in_durable_run
from ._token_count import with_count_layer, without_count_layer
from ._toolsets import require_unique_toolset_ids
from ._workspaces import DEFAULT_WORKSPACE_ADVICE, refusing_workspace

__all__ = ('DEFAULT_MODEL_KEY', 'DurabilityCapability', 'is_model_stream_event')

DEFAULT_MODEL_KEY = 'default'
"""The `models=` key reserved for the agent's own model (`run(model='default')` selects it)."""

_MODEL_STREAM_EVENT_TYPES: tuple[type[Any], ...] = (
    pai_messages.PartStartEvent,
    pai_messages.PartDeltaEvent,
    pai_messages.PartEndEvent,
    pai_messages.FinalResultEvent,
)


def is_model_stream_event(event: pai_messages.AgentStreamEvent) -> bool:
    """Whether an event comes from a model's streamed response (parts and the final-result marker).

    The capability form delivers these live from inside the model's durable unit; only the other events (tool calls,
    tool results) are dispatched from workflow code, each in its own unit, as pydantic-ai 2.x does.
    """
    return isinstance(event, _MODEL_STREAM_EVENT_TYPES)


_ROUTING: ContextVar[tuple[object, object] | None] = ContextVar('durable_kernel_routing_model_request', default=None)
"""While a durability capability's `wrap_model_request` runs its handler: that capability and its engine's state of the
request (which model unit the request goes to), so that its later hooks route a model set after the wrap."""


class DurabilityCapability(AbstractCapability[AgentDepsT]):
    """Base of `TemporalDurability`, `DBOSDurability` and `PrefectDurability`: binding, model registry, pass-through.

    Engines implement `in_durable_context` and `_bind_to_agent` (build the engine state on the bound copy), set up a
    durable run in `_wrap_durable_run`, and override the other run hooks they need, calling `super()` (or returning
    the handler's result) outside a durable context.
    """

    engine_name: ClassVar[str] = 'a durable engine'
    """The engine's name in error messages (`'Temporal'`, `'DBOS'`, `'Prefect'`)."""

    unit_plural: ClassVar[str] = 'units'
    """What the engine calls its durable units, in error messages (`'activities'`, `'steps'`, `'tasks'`)."""

    container_name: ClassVar[str] = 'a durable run'
    """Where a durable run happens, in error messages (`'a Temporal workflow'`, `'a DBOS workflow'`, ...)."""

    _workspace_advice: ClassVar[str] = DEFAULT_WORKSPACE_ADVICE
    """What to do instead of using the run's workspace in container code (see `durable_kernel._workspaces`)."""

    name: str
    """The name that prefixes the agent's durable unit names: `name=`, else the agent's name (set when bound)."""

    def __init__(
        self,
        *,
        models: Mapping[str, Model] | None = None,
        event_stream_handler: EventStreamHandler[AgentDepsT] | None = None,
        name: str | None = None,
    ) -> None:
        self.name = name or ''
        self._models: dict[str, Model] = dict(models or {})
        if DEFAULT_MODEL_KEY in self._models:
            raise UserError(
                f"The key {DEFAULT_MODEL_KEY!r} in `{type(self).__name__}(models=...)` names the agent's own model: "
                'register the model under another key.'
            )
        self._event_stream_handler = event_stream_handler
        self._agent: AbstractAgent[AgentDepsT, Any] | None = None
        # Shared by the user's instance and all its bound copies (a shallow copy keeps the same dict): one binding per
        # agent, however many times pydantic-ai or a registration helper asks for it.
        # Keyed by `id` (agents are unhashable dataclasses); the weak reference tells a reused id from the same agent.
        self._bindings: dict[int, tuple[weakref.ref[AbstractAgent[Any, Any]], DurabilityCapability[Any]]] = {}
        self._operations: dict[tuple[str, str], CapabilityOperation] | None = None

    # --- binding -------------------------------------------------------------------------------------------------

    @property
    def agent(self) -> AbstractAgent[AgentDepsT, Any] | None:
        """The agent this copy is bound to, or `None` for the instance passed to `Agent(capabilities=...)`."""
        return self._agent

    @property
    def models(self) -> Mapping[str, Model]:
        """The models registered with `models=`, by key; a run may use any of them (or the agent's default)."""
        return self._models

    @property
    def event_stream_handler(self) -> EventStreamHandler[AgentDepsT] | None:
        """The handler given with `event_stream_handler=`."""
        return self._event_stream_handler

    @property
    @abstractmethod
    def in_durable_context(self) -> bool:
        """Whether the current code runs inside the engine's durable container (workflow or flow)."""
        raise NotImplementedError

    @abstractmethod
    def _bind_to_agent(self, agent: AbstractAgent[AgentDepsT, Any]) -> None:
        """Build this engine's state for `agent` on the bound copy (`self`); `self.name` is already set."""
        raise NotImplementedError

    def _check_bindable(self) -> None:
        """Raise a `UserError` where binding is not allowed (Temporal: inside a workflow, activities can't register)."""

    def _bind(self, agent: AbstractAgent[AgentDepsT, Any]) -> DurabilityCapability[AgentDepsT]:
        if self._agent is agent:
            return self
        known = self._bindings.get(id(agent))
        if known is not None and known[0]() is agent:
            return cast('DurabilityCapability[AgentDepsT]', known[1])
        self._check_bindable()
        name = self.name or agent.name
        if not name:
            raise UserError(
                f'An agent needs a unique `name`, the same in every deploy, to be used with {type(self).__name__}: its durable '
                f'{self.unit_plural} are named after it. Pass `name=...` to `Agent(...)` or to `{type(self).__name__}(...)`.'
            )
        if agent.model is None:
            # A durable unit must be able to build the model of a run that gave none: the agent's own, fixed when the
            # agent is built (pydantic-ai 2.x's rule too).
            raise UserError(
                f'An agent needs to have a `model` to be used with {type(self).__name__} (the agent {name!r} has none): '
                'pass one to `Agent(...)`; other models a run may select go in `models=`.'
            )
        require_unique_toolset_ids(agent.toolsets, engine=self.engine_name)
        bound = copy.copy(self)
        bound.name = name
        bound._agent = agent
        bound._operations = None
        bound._bind_to_agent(agent)
        key = id(agent)
        bindings = self._bindings
        self._bindings[key] = (weakref.ref(agent, lambda _: bindings.pop(key, None)), bound)
        return bound

    def for_agent(self, agent: AbstractAgent[AgentDepsT, Any]) -> AbstractCapability[AgentDepsT]:
        """Bind to `agent` (pydantic-ai 2.x calls this from `Agent(...)`): the copy the agent runs with."""
        return self._bind(agent)

    async def for_run(self, ctx: RunContext[AgentDepsT]) -> AbstractCapability[AgentDepsT]:
        """The bound copy for the run's agent (binding it now on pydantic-ai 1.107, which has no `for_agent`)."""
        if self._agent is not None:
            return self
        agent = cast('AbstractAgent[AgentDepsT, Any] | None', getattr(ctx, 'agent', None))
        if agent is None:  # pragma: no cover - pydantic-ai always sets the run's agent
            return self
        return self._bind(agent)

    def _validate_override_capabilities(self, capabilities: Sequence[AbstractCapability[Any]]) -> None:
        """Refuse an `agent.override(capabilities=...)` list that leaves this bound copy out (pydantic-ai 2.78+ hook).

        pydantic-ai calls it on the agent's own capabilities with the leaves the override list keeps unchanged from
        `agent.root_capability.capabilities`. Without this copy, runs in the block would not be durable at all (the
        workflow or flow would call the model and tools directly, unrecorded); a new instance in its place would be
        bound again, under units the worker never registered. Checked outside a durable context too: DBOS and Prefect
        carry an override entered outside a workflow or flow into it.
        """
        for capability in capabilities:
            while isinstance(capability, WrapperCapability):
                capability = capability.wrapped
            if capability is self:
                return
        name = type(self).__name__
        raise UserError(
            f"`agent.override(capabilities=...)` replaces all of the agent's capabilities, and this list leaves out "
            f"the agent's `{name}`: runs inside the block would not be durable (a new `{name}` would not do either: "
            f"its {self.unit_plural} are registered with the one the agent was built with). Keep the agent's own "
            'capabilities in the list: `agent.override(capabilities=[*agent.root_capability.capabilities, extra])`.'
        )

    @classmethod
    def from_agent(cls, agent: AbstractAgent[Any, Any]) -> Any:
        """The bound instance of this capability attached to `agent`, or `None` if none is attached.

        Registration helpers call this to find the units to register. On pydantic-ai 1.107 it binds the capability now.

        Raises:
            UserError: Several durability capabilities (ours or pydantic-ai's own) are attached to the agent.
        """
        found: list[DurabilityCapability[Any]] = []
        foreign: list[AbstractCapability[Any]] = []

        def visit(capability: AbstractCapability[Any]) -> None:
            while isinstance(capability, WrapperCapability):
                capability = capability.wrapped
            if isinstance(capability, DurabilityCapability):
                found.append(capability)
            elif is_reference_durability(capability):
                foreign.append(capability)

        agent_root_capability(agent).apply(visit)
        if len(found) + len(foreign) > 1:
            names = ', '.join(type(c).__name__ for c in [*found, *foreign])
            raise UserError(
                f'The agent {agent.name!r} has several durability capabilities ({names}); each wraps every model request '
                'and tool call in its own durable units, so attach exactly one.'
            )
        mine = [c for c in found if isinstance(c, cls)]
        return mine[0]._bind(agent) if mine else None

    # --- capability operations (pydantic-ai 2.68+'s `@durable_operation`) ------------------------------------------

    @property
    def capability_operations(self) -> dict[tuple[str, str], CapabilityOperation]:
        """The durable operations of the bound agent's capabilities, by `(capability id, operation)` (collected once).

        Empty where the installed pydantic-ai has no `durable_operation` (1.107, 2.33) or before binding.

        Raises:
            UserError: A capability breaks a rule of durable operations (see `durable_kernel.capability_operations`).
        """
        if self._operations is None:
            if not HAS_DURABLE_OPERATIONS or self._agent is None:
                return {}
            self._operations = capability_operations(agent_root_capability(self._agent))
        return self._operations

    @property
    def _operation_unit(self) -> OperationUnit | None:
        """Runs a durable operation's unit from workflow or flow code; `None` where the engine has none yet."""
        return None

    _model_request_operations: ClassVar[bool] = False
    """Whether the engine's operation unit takes operations on a request's `ModelRequestContext` (see
    `install_operation_dispatchers`); without it they run where they are called."""

    @property
    def _request_model_resolver(self) -> RequestModelResolver | None:
        """Resolves in workflow or flow code the model a durable hook swapped in (by its key); `None`: refused."""
        return self.model_for_operation

    async def model_for_operation(self, ctx: RunContext[Any], key: str | None) -> Model:
        """The model a durable operation's key names (see `operation_model_key`), resolved as a model unit does.

        `None` (or `'default'`) is the agent's default; a `models=` key its model; another string is offered to the
        agent's `resolve_model_id` capabilities (pydantic-ai 2.x) with the run's deps, then built by `infer_model`.

        Raises:
            UserError: The string names no model this process can build.
        """
        if key is None or key == DEFAULT_MODEL_KEY:
            default = self._default_model_instance()
            if default is not None:
                return default
            key = self.default_model_id
            if key is None:
                raise UserError(f'The agent {self.name!r} has no default model for a durable operation.')
        if (registered := self._models.get(key)) is not None:
            return registered
        if self._agent is not None:
            resolved = await resolve_model_id_by_capabilities(self._agent, getattr(ctx, 'deps', None), key)
            if resolved is not None:
                return resolved
        try:
            return infer_model(key)
        except (UserError, ValueError) as error:
            raise UserError(
                f'The model {key!r} of a durable operation of the agent {self.name!r} could not be built: it is not a '
                '`models=` key, no `resolve_model_id` capability resolved it, and `infer_model` cannot build it.'
            ) from error

    def _prepare_run_context(self, ctx: RunContext[AgentDepsT]) -> None:
        """Install the dispatchers of the agent's durable operations (pydantic-ai 2.68+ calls this before `wrap_run`)."""
        unit = self._operation_unit
        if unit is None or not self.capability_operations:
            return
        install_operation_dispatchers(
            ctx,
            self.capability_operations,
            unit=unit,
            in_durable_context=self._in_container_code,
            model_request_operations=self._model_request_operations,
            resolve_model=self._request_model_resolver,
        )

    def operation_model_key(self, ctx: RunContext[Any]) -> str | None:
        """The key of the run's model that a durable operation's unit builds again (`None`: the agent's default).

        The string the run's model was selected by (pydantic-ai 2.x records it on the run context), else the model's
        key; a model that has none (not registered) leaves the unit with the default: the operation's own code does
        not send requests through the run's model.
        """
        selection = getattr(ctx, 'model_id', None)
        if isinstance(selection, str):
            return None if selection == DEFAULT_MODEL_KEY else selection
        model: Any = getattr(ctx, 'model', None)
        if isinstance(model, Model):
            try:
                return self.model_key(cast('Model', model))
            except UserError:
                return None
        return None

    def _in_container_code(self) -> bool:
        """Whether the caller is workflow or flow code itself (not a unit inside it): operations dispatch from there."""
        return self.in_durable_context

    def _prepare_workspace(self, ctx: RunContext[AgentDepsT], workspace: Any, *, explicit: bool) -> Any:
        """Make the run's workspace refuse workflow or flow code's calls (pydantic-ai 2.68+ calls this on selection).

        Ours do not make workspace calls durable yet: see `durable_kernel._workspaces`. A run selected outside the
        container keeps its workspace as it is.
        """
        if not self.in_durable_context:
            return workspace
        return refusing_workspace(
            workspace,
            in_container_code=self._in_container_code,
            container=self.container_name,
            units=self.unit_plural,
            advice=self._workspace_advice,
        )

    # --- models --------------------------------------------------------------------------------------------------

    async def resolve_model_id(self, ctx: Any, *, model_id: KnownModelName | str) -> Model | None:
        """The registered model a string names (`run(model='key')`, `override(model='key')`, a string default).

        pydantic-ai 2.x asks capabilities this before `infer_model`; a string that is not a key is left to the agent's
        other capabilities and then to `infer_model` (`'openai:gpt-5'`). pydantic-ai 1.107 has no such hook: there a
        string is always built by `infer_model`, so a registered model is selected by passing its instance.

        Args:
            ctx: The resolution context (the agent and the run's deps).
            model_id: The string given.

        Returns:
            The registered instance, the agent's own model for `'default'`, or `None` to defer.
        """
        if model_id == DEFAULT_MODEL_KEY:
            return self._default_model_instance()
        return self._models.get(model_id)

    def request_model_key(self, ctx: RunContext[Any], request_context: ModelRequestContext) -> str | None:
        """The key that names a model request's model across a durable boundary (see `model_key`).

        A model selected by a string (pydantic-ai 2.x records it on the request) is named by that string while the
        request still uses the run's model: the same string selects the same model again inside the unit and on
        recovery, whether it is a `models=` key, a provider model name or an alias another capability resolves.

        Raises:
            UserError: The model is a model instance that is neither the agent's default nor registered.
        """
        selection = request_model_selection(request_context)
        if selection is not None and _innermost(request_context.model) is _innermost(getattr(ctx, 'model', None)):
            return None if selection == DEFAULT_MODEL_KEY else selection
        return self.model_key(request_context.model)

    def model_key(self, model: Model) -> str | None:
        """The key that names `model` across a durable boundary: `None` for the agent's default, else its `models=` key.

        A wrapper around a registered model (instrumentation, a fallback layer) is peeled to find it; a registered
        wrapper is found as itself first.

        Raises:
            UserError: The model is neither the agent's default nor registered: it could not be rebuilt inside the
                durable unit (a model instance does not cross; rebuilding it by name could reach another endpoint).
        """
        default = self._default_model_instance()
        candidate: Model | None = model
        while candidate is not None:
            if candidate is default:
                return None
            for key, registered in self._models.items():
                if registered is candidate:
                    return key
            candidate = candidate.wrapped if isinstance(candidate, WrapperModel) else None
        by_string = (
            "or select a model by a string (`run(model='openai:gpt-5')`, or an alias a `ResolveModelId` capability "
            'builds), which is built again inside the unit'
            if PYDANTIC_AI_2
            else 'pydantic-ai 1.107 builds a model given as a string before any capability sees it, so a string '
            'cannot be told from an instance here'
        )
        raise UserError(
            f'The model instance {model.model_name!r} used by the agent {self.name!r} inside a durable run is neither '
            f"the agent's default model nor registered with `{type(self).__name__}(models={{...}})`: a model instance "
            'cannot cross into a durable unit, and rebuilding it from its name could reach another endpoint with other '
            f'credentials. Register it under a key and pass the key or that instance to `run(model=...)`; {by_string}.'
        )

    def model_for_key(self, key: str | None) -> Model:
        """The model a durable unit uses for `key` (see `model_key`).

        Raises:
            UserError: `key` is not registered (the worker runs other code than the one that recorded the run).
        """
        if key is None:
            default = self._default_model_instance()
            if default is None:
                raise UserError(
                    f'The default model of the agent {self.name!r} is the string {self.default_model_id!r}, which '
                    f'names no model registered with {type(self).__name__}(models=...): it is built per run.'
                )
            return default
        try:
            return self._models[key]
        except KeyError:
            raise UserError(
                f'The durable run of the agent {self.name!r} asks for the model {key!r}, which is not registered with '
                f'{type(self).__name__}(models=...) in this process: register the same models in every process.'
            ) from None

    @property
    def default_model_id(self) -> str | None:
        """The agent's default model when it is given as a string (`Agent('openai:gpt-5')` on pydantic-ai 2.x)."""
        model: object = getattr(self._agent, 'model', None)
        return model if isinstance(model, str) else None

    def _default_model_instance(self) -> Model | None:
        # The agent's model instance, or the registered model its string default names; `None` for a string that is
        # built per run (pydantic-ai 2.x keeps a string default unresolved until a run, so that a capability can
        # resolve it with the run's deps).
        model: object = getattr(self._agent, 'model', None)
        if isinstance(model, str):
            return self._models.get(model)
        return cast('Model', model) if isinstance(model, Model) else None

    # --- model requests ------------------------------------------------------------------------------------------

    async def before_model_request(
        self, ctx: RunContext[AgentDepsT], request_context: ModelRequestContext
    ) -> ModelRequestContext:
        """Where pydantic-ai counts tokens before `wrap_model_request` (1.107): the count goes to a durable unit.

        pydantic-ai 1.107 counts a request's tokens (`count_tokens_before_request`) after these hooks, with the model
        they leave, and only then calls `wrap_model_request`, which swaps in the engine's durable model. So here the
        model gets a layer (`CountsInDurableUnit`) whose count goes through `wrap_model_request` to the durable model,
        whose `count_tokens` runs the engine's unit; `wrap_model_request` takes the layer off again. pydantic-ai 2.68+
        runs these hooks inside `wrap_model_request`, on the durable model already, and counts with it; there this
        hook also puts a model an earlier hook swapped in into its unit.

        Raises:
            UserError: A hook swapped in a model instance that is neither the agent's default nor registered.
        """
        if COUNTS_TOKENS_BEFORE_REQUEST_HOOKS and self.in_durable_context:
            with_count_layer(ctx, request_context, functools.partial(self._count_with_durable_model, ctx))
        # pydantic-ai 2.68+ runs these hooks inside `wrap_model_request`, after the engine put the request's model in
        # its unit; this (innermost) capability's hook runs last, so a model another hook set (a durable hook's, applied
        # back by its key, or any other registered model) is put in its unit here, as 2.78's durability routes it as the
        # last writer of the before-chain. An unregistered instance is refused by the engine with a `UserError`.
        routing = self._routing_state()
        if routing is not None:
            self._route_request_model(ctx, request_context, routing[0], attempt=False)
        return request_context

    async def prepare_model_request(
        self, ctx: RunContext[AgentDepsT], request_context: ModelRequestContext
    ) -> ModelRequestContext:
        """Inside a durable context, on pydantic-ai 2.78: an attempt on another model runs in that model's unit.

        The attempt loop sets the model of an attempt a `RetryModelRequest('key')` asks for after every other hook;
        this (innermost) capability's hook runs last before the attempt, so the model is put in its unit here, as
        pydantic-ai 2.78's durability routes it.

        Raises:
            UserError: The attempt's model is an instance that is neither the agent's default nor registered.
        """
        routing = self._routing_state()
        if routing is not None:
            self._route_request_model(ctx, request_context, routing[0], attempt=True)
        return request_context

    @contextmanager
    def _routing_request(self, state: object) -> Generator[None]:
        """While the engine's handler runs the request: later hooks of this capability route by `state`."""
        token = _ROUTING.set((self, state))
        try:
            yield
        finally:
            _ROUTING.reset(token)

    def _routing_state(self) -> tuple[object] | None:
        # `(state,)` while this capability's handler runs a request in a durable context (the state may be `None`).
        routing = _ROUTING.get()
        if routing is None or routing[0] is not self or not self.in_durable_context:
            return None
        return (routing[1],)

    def _route_request_model(
        self, ctx: RunContext[AgentDepsT], request_context: ModelRequestContext, state: Any, *, attempt: bool
    ) -> None:
        """Put the model a hook (`attempt=False`) or the attempt loop (`attempt=True`) set in its unit (engines).

        `state` is what the engine gave `_routing_request` for this request.
        """

    async def _count_with_durable_model(
        self,
        ctx: RunContext[AgentDepsT],
        model: Model,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> RequestUsage:
        # The engine's own request routing picks the durable model (and the key it is sent by); the "request" made
        # through it is only the count.
        counted: list[RequestUsage] = []

        async def count(durable: ModelRequestContext) -> ModelResponse:
            counted.append(
                await durable.model.count_tokens(
                    durable.messages, durable.model_settings, durable.model_request_parameters
                )
            )
            return ModelResponse(parts=[])

        request_context = ModelRequestContext(
            model=model,
            messages=messages,
            model_settings=model_settings,
            model_request_parameters=model_request_parameters,
        )
        await self._wrap_durable_model_request(ctx, request_context=request_context, handler=count)
        return counted[0]

    async def wrap_model_request(
        self,
        ctx: RunContext[AgentDepsT],
        *,
        request_context: ModelRequestContext,
        handler: WrapModelRequestHandler,
    ) -> ModelResponse:
        """Inside a durable context: the request goes to the engine's durable model (`_wrap_durable_model_request`)."""
        if not self.in_durable_context:
            return await handler(request_context)
        return await self._wrap_durable_model_request(
            ctx, request_context=without_count_layer(request_context), handler=handler
        )

    async def _wrap_durable_model_request(
        self,
        ctx: RunContext[AgentDepsT],
        *,
        request_context: ModelRequestContext,
        handler: WrapModelRequestHandler,
    ) -> ModelResponse:
        """Inside a durable context: call `handler` with the engine's durable model in `request_context`."""
        return await handler(request_context)

    # --- run hooks -----------------------------------------------------------------------------------------------

    async def wrap_run(self, ctx: RunContext[AgentDepsT], *, handler: WrapRunHandler) -> AgentRunResult[Any]:
        """Outside a durable context: the run as it is; inside: the engine's run set-up and wait for external events.

        Installed here once for every engine (as the wrapper form does in `DurableWrapperAgent`): the engine's durable
        wait (`_external_event_wait`), or a refusal where it has none, since a run waiting for an external event would
        otherwise wait in the worker's memory, unrecorded.
        """
        if not self.in_durable_context:
            return await handler()
        with external_events_in_durable_run(self.container_name, self._external_event_wait()):
            return await self._wrap_durable_run(ctx, handler=handler)

    def _external_event_wait(self) -> ExternalEventWait | None:
        """The engine's durable wait for external events in the current run; `None` refuses them (the default)."""
        return None

    async def _wrap_durable_run(self, ctx: RunContext[AgentDepsT], *, handler: WrapRunHandler) -> AgentRunResult[Any]:
        """Run `handler` inside the engine's durable container, with what the engine sets up around a run."""
        return await handler()

    def _effective_event_stream_handler(self) -> EventStreamHandler[AgentDepsT] | None:
        """The handler of the current run: `event_stream_handler=`, unless an engine substitutes one for this run.

        DBOS does: a workflow recorded by its wrapper agent carries the run's handler in its inputs.
        """
        return self._event_stream_handler

    @property
    def has_wrap_run_event_stream(self) -> bool:
        """Streams are wrapped only when there is a handler (pydantic-ai then streams every node)."""
        return self._effective_event_stream_handler() is not None

    async def wrap_run_event_stream(
        self, ctx: RunContext[AgentDepsT], *, stream: AsyncIterable[pai_messages.AgentStreamEvent]
    ) -> AsyncIterable[pai_messages.AgentStreamEvent]:
        """Outside a durable context: the handler sees the events as with `ProcessEventStream`; inside: the engine's."""
        handler = self._effective_event_stream_handler()
        if handler is None:
            async for event in stream:
                yield event
            return
        wrapped = (
            self._durable_event_stream(ctx, stream, handler)
            if self.in_durable_context
            else ProcessEventStream(handler).wrap_run_event_stream(ctx, stream=stream)
        )
        async for event in wrapped:
            yield event

    def _durable_event_stream(
        self,
        ctx: RunContext[AgentDepsT],
        stream: AsyncIterable[pai_messages.AgentStreamEvent],
        handler: EventStreamHandler[AgentDepsT],
    ) -> AsyncIterable[pai_messages.AgentStreamEvent]:
        """Inside a durable context: deliver the events to `handler` in the engine's units, passing them through."""
        raise NotImplementedError(f'{type(self).__name__} does not dispatch events inside a durable run yet')

    def get_ordering(self) -> CapabilityOrdering:
        """Innermost: every other capability's hooks see the durable model and toolsets as plain ones."""
        return CapabilityOrdering(position='innermost')

    @classmethod
    def get_serialization_name(cls) -> str | None:
        """Not loadable from an agent spec: it takes models and callables."""
        return None


def _innermost(model: object) -> object:
    # The model under every wrapper layer: a request's model may be the run's model instrumented.
    while isinstance(model, WrapperModel):
        model = model.wrapped
    return model
