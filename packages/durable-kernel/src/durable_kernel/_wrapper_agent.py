"""`DurableWrapperAgent`: the public entry points of every durable wrapper agent, declared once for both pydantic-ai lines.

pydantic-ai's `run`, `run_sync`, `run_stream`, `run_stream_events`, `iter` and `override` take some twenty keyword
arguments, and pydantic-ai 2.x added five more (`conversation`, `run_id`, `cancellation_token`, `timeout`,
`workspace`) and changed what `run_stream_events` returns. Code written against a plain `Agent` must work unchanged
with our wrappers on the line it was written for, so the signatures cannot be written out here once for both.

Instead the entry points are *inherited*: a type checker sees [`WrapperAgent`][pydantic_ai.agent.WrapperAgent]'s own
signatures and return types, those of the installed line, overloads included. At run time each entry point binds its
arguments against that same upstream signature (so a wrong keyword is the same `TypeError` a plain agent raises),
packs them into one [`RunArguments`][durable_kernel.RunArguments] ([`OverrideArguments`][durable_kernel.OverrideArguments]
for `override`) and calls a protected hook that the engine packages override. No engine re-declares or re-forwards them.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar, cast

from pydantic_ai.agent import Agent, AgentRun, AgentRunResult, WrapperAgent
from pydantic_ai.exceptions import UserError
from pydantic_ai.models import Model
from pydantic_ai.output import OutputDataT
from pydantic_ai.result import StreamedRunResult
from pydantic_ai.tools import AgentDepsT

from ._compat import (
    COUNTS_TOKENS_BEFORE_REQUEST_HOOKS,
    HAS_WORKSPACES,
    REALTIME_SESSION_HOOKS,
    check_no_nested_sync_run,
)
from ._external_events import ExternalEventWait, external_events_in_durable_run
from ._run_arguments import OverrideArguments, RunArguments
from ._token_count import CountInRunContext
from ._workspaces import DEFAULT_WORKSPACE_ADVICE, RefuseWorkspaceInContainerCode, run_may_select_workspace

__all__ = ('DurableWrapperAgent', 'require_wrapped_model')


def require_wrapped_model(wrapped: Any, *, engine: str, wrapper: str) -> Model[Any]:
    """The wrapped agent's model instance; refuse to wrap an agent without one.

    A wrapper builds its durable model (whose requests are the engine's units) when it is created, from the agent's
    model: a model chosen only at run time would have no durable counterpart.

    Args:
        wrapped: The agent being wrapped.
        engine: The engine's display name, for the message.
        wrapper: The wrapper class's name, for the message.

    Returns:
        The agent's model.

    Raises:
        UserError: The agent has no model instance.
    """
    model: object = wrapped.model
    if not isinstance(model, Model):
        raise UserError(
            f'An agent needs a `model` set at construction to be used with {engine} (it cannot be chosen at run time '
            f'only): pass `model=...` to `Agent(...)` before wrapping it in `{wrapper}`.'
        )
    return cast('Model[Any]', model)


def _upstream_signature(entry_point: str) -> inspect.Signature:
    return inspect.signature(getattr(Agent, entry_point))


def _bind(
    signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any], fields: frozenset[str]
) -> dict[str, Any]:
    """The call's arguments by field name, as the upstream signature binds them (defaults applied, `self` left out).

    A `**kwargs` parameter (pydantic-ai's deprecated aliases) and any parameter that a newer pydantic-ai declares but
    our arguments dataclass does not yet know go, untouched, to `deprecated_kwargs`, so they reach pydantic-ai.
    """
    bound = signature.bind(None, *args, **kwargs)
    bound.apply_defaults()
    arguments: dict[str, Any] = {}
    passed_on: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        parameter = signature.parameters[name]
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            passed_on.update(value)
        elif name in fields:
            arguments[name] = value
        elif name != 'self':
            passed_on[name] = value
    arguments['deprecated_kwargs'] = passed_on
    return arguments


_RUN_FIELDS = frozenset(f.name for f in dataclasses.fields(RunArguments))
_OVERRIDE_FIELDS = frozenset(f.name for f in dataclasses.fields(OverrideArguments))


def _documented(entry_point: str, doc: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a runtime entry point the upstream signature (for `inspect` and IDEs) and our docstring."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        function.__signature__ = _upstream_signature(entry_point)
        function.__doc__ = doc
        return function

    return decorate


class DurableWrapperAgent(WrapperAgent[AgentDepsT, OutputDataT]):
    """Base class of the engines' wrapper agents: the upstream entry points, one protected hook each.

    Every hook's default is what the plain [`WrapperAgent`][pydantic_ai.agent.WrapperAgent] does; an engine
    overrides the hooks it needs (`_run_impl`, `_run_sync_impl`, `_iter_impl`, `_run_stream_impl`,
    `_run_stream_events_impl`, `_override_impl`) and calls `super()` for the plain behaviour.
    [`_agent_run`][durable_kernel.DurableWrapperAgent._agent_run] is the agent loop itself, which engines run
    inside their durable unit.
    """

    _name: str
    """Set by the engine's constructor (the given `name=`, else the wrapped agent's; never empty); unset on the plain
    wrapper, whose name is the wrapped agent's."""

    _units_named: ClassVar[str] = 'its durable units'
    """What the name names, for the refusal to change it (e.g. `the activities recorded in workflow histories`)."""

    @property
    def name(self) -> str | None:
        """The agent's name. It names the engine's durable units, which are persisted: it cannot change."""
        name: str | None = getattr(self, '_name', None)
        return name if name is not None else self.wrapped.name

    @name.setter
    def name(self, value: str | None) -> None:
        if (
            getattr(self, '_name', None) is None
        ):  # no engine named its units after it (the plain wrapper): as pydantic-ai's
            self.wrapped.name = value
            return
        wrapper = type(self).__name__
        raise UserError(
            f'The name of a {wrapper} cannot change: it names {self._units_named}. '
            f'Create a new {wrapper} with the new `name=`.'
        )

    async def _agent_run(self, arguments: RunArguments[AgentDepsT]) -> AgentRunResult[Any]:
        """The agent loop of [`AbstractAgent.run`][pydantic_ai.agent.AbstractAgent.run], which drives `self.iter`."""
        container = self._durable_container()
        if container is None:
            return await super().run(arguments.user_prompt, **arguments.run_kwargs())
        if HAS_WORKSPACES and run_may_select_workspace(
            self.wrapped, arguments.capabilities, run_workspace=arguments.workspace
        ):
            # The run's workspace (a `LocalWorkspace` on the wrapped agent) refuses calls from container code, which
            # would run unrecorded: see `durable_kernel._workspaces`. Only where the run may have one: an extra
            # capability costs a little in every hook.
            refusal = RefuseWorkspaceInContainerCode[AgentDepsT](
                in_container_code=self._in_container_code,
                container=container,
                units=self._unit_plural,
                advice=self._workspace_advice,
            )
            arguments = dataclasses.replace(arguments, capabilities=[*(arguments.capabilities or ()), refusal])
        with external_events_in_durable_run(container, self._external_event_wait()):
            return await super().run(arguments.user_prompt, **arguments.run_kwargs())

    def _external_event_wait(self) -> ExternalEventWait | None:
        """The engine's durable wait for external events in the current run; `None` refuses them (the default)."""
        return None

    async def _run_impl(self, arguments: RunArguments[AgentDepsT]) -> AgentRunResult[Any]:
        """What `run` does; by default the agent loop. Engines start their durable unit here."""
        return await self._agent_run(arguments)

    def _run_sync_impl(self, arguments: RunArguments[AgentDepsT]) -> AgentRunResult[Any]:
        """What `run_sync` does; by default pydantic-ai's, which runs `self.run` in an event loop."""
        return super().run_sync(arguments.user_prompt, **arguments.run_kwargs())

    def _iter_impl(self, arguments: RunArguments[AgentDepsT]) -> AbstractAsyncContextManager[AgentRun[AgentDepsT, Any]]:
        """What `iter` does; by default the wrapped agent's `iter`. Engines install their durable model and toolsets.

        Where pydantic-ai counts a request's tokens outside the run context (1.107), a run that counts them
        (`UsageLimits(count_tokens_before_request=True)`, the only way 1.107 counts) gets `CountInRunContext`: the
        durable model's counting unit needs the run (see `durable_kernel._token_count`). Only such a run: a capability
        costs every run CPU in each of its hooks.
        """
        limits = arguments.usage_limits
        if COUNTS_TOKENS_BEFORE_REQUEST_HOOKS and limits is not None and limits.count_tokens_before_request:
            arguments = dataclasses.replace(
                arguments, capabilities=[*(arguments.capabilities or ()), CountInRunContext()]
            )
        return super().iter(arguments.user_prompt, **arguments.iter_kwargs())

    def _run_stream_impl(
        self, arguments: RunArguments[AgentDepsT]
    ) -> AbstractAsyncContextManager[StreamedRunResult[AgentDepsT, Any]]:
        """What `run_stream` does; by default the wrapped agent's streamed run. Engines refuse or wrap it."""
        return super().run_stream(arguments.user_prompt, **arguments.run_kwargs())

    def _run_stream_events_impl(self, arguments: RunArguments[AgentDepsT]) -> Any:
        """What `run_stream_events` does; by default the agent's event stream. Engines refuse or wrap it.

        Returns:
            What the installed line's `run_stream_events` returns: an async iterable of events on 1.107, an async
            context manager of the run's events on 2.x.
        """
        return super().run_stream_events(arguments.user_prompt, **arguments.iter_kwargs())

    def _override_impl(self, arguments: OverrideArguments[AgentDepsT]) -> AbstractContextManager[None]:
        """What `override` does; by default the wrapped agent's `override`. Engines check or keep the model.

        The wrapped agent is called directly (not through `WrapperAgent.override`, which on 1.107 does not forward
        `metadata`) with only the arguments that were given, so every keyword of the plain `Agent` works.
        """
        return self.wrapped.override(**arguments.given_kwargs())

    def _durable_container(self) -> str | None:
        """The durable container the caller runs in (`'a Temporal workflow'`, ...), or `None` outside one.

        Engines override it; the kernel uses it to refuse what a durable run cannot record (realtime sessions).
        """
        return None

    _unit_plural: ClassVar[str] = 'durable units'
    """What the engine calls its durable units (`'activities'`, `'steps'`, `'tasks'`), in error messages."""

    _workspace_advice: ClassVar[str] = DEFAULT_WORKSPACE_ADVICE
    """What to do instead of using the run's workspace in container code (see `durable_kernel._workspaces`)."""

    def _in_container_code(self) -> bool:
        """Whether the caller is the durable container's own code, not one of its units (Prefect: not a task).

        By default, whether there is a container at all: an engine whose container check stays true inside its units
        overrides it.
        """
        return self._durable_container() is not None

    def _refuse_in_durable_container(self, what: str) -> None:
        container = self._durable_container()
        if container is not None:
            raise UserError(
                f'{what} cannot be used inside {container}: a realtime session is a live, long-lived connection '
                'that the engine can neither record nor replay on recovery. Open it outside the durable run.'
            )

    # The entry points exist only at run time: a type checker keeps seeing WrapperAgent's, i.e. those of the installed
    # pydantic-ai line, with their overloads and return types.
    if not TYPE_CHECKING:
        _RUN = _upstream_signature('run')
        _RUN_SYNC = _upstream_signature('run_sync')
        _RUN_STREAM = _upstream_signature('run_stream')
        _RUN_STREAM_EVENTS = _upstream_signature('run_stream_events')
        _ITER = _upstream_signature('iter')
        _OVERRIDE = _upstream_signature('override')

        @_documented('run', 'Run the agent to completion, durably as the engine defines it (arguments: `Agent.run`).')
        async def run(self, *args, **kwargs):
            return await self._run_impl(RunArguments(**_bind(self._RUN, args, kwargs, _RUN_FIELDS)))

        @_documented('run_sync', 'Run the agent to completion synchronously, durably as the engine defines it.')
        def run_sync(self, *args, **kwargs):
            check_no_nested_sync_run()
            return self._run_sync_impl(RunArguments(**_bind(self._RUN_SYNC, args, kwargs, _RUN_FIELDS)))

        @_documented('run_stream', 'Run the agent and stream its output, as the engine allows it.')
        def run_stream(self, *args, **kwargs):
            return self._run_stream_impl(RunArguments(**_bind(self._RUN_STREAM, args, kwargs, _RUN_FIELDS)))

        @_documented('run_stream_events', 'Run the agent and stream its events, as the engine allows it.')
        def run_stream_events(self, *args, **kwargs):
            return self._run_stream_events_impl(
                RunArguments(**_bind(self._RUN_STREAM_EVENTS, args, kwargs, _RUN_FIELDS))
            )

        @_documented('iter', "Iterate over the agent graph's nodes with the engine's durable model and toolsets.")
        def iter(self, *args, **kwargs):
            return self._iter_impl(RunArguments(**_bind(self._ITER, args, kwargs, _RUN_FIELDS)))

        if REALTIME_SESSION_HOOKS:
            # pydantic-ai 2.x opens realtime sessions (and answers WebRTC signaling) through these two private hooks of
            # the wrapper chain (see `_compat`): both are refused in a durable run.
            @asynccontextmanager
            async def _resolve_realtime_session(self, *args, **kwargs):
                self._refuse_in_durable_container(
                    '`agent.realtime(...).answer_webrtc_offer()` / `.create_client_secret()`'
                )
                async with super()._resolve_realtime_session(*args, **kwargs) as resolved:
                    yield resolved

            @asynccontextmanager
            async def _open_realtime_session(self, *args, **kwargs):
                self._refuse_in_durable_container('`agent.realtime(...).session()`')
                async with super()._open_realtime_session(*args, **kwargs) as session:
                    yield session

        @_documented(
            'override', "Temporarily override the agent's configuration (useful in tests), as the engine allows."
        )
        def override(self, *args, **kwargs):
            # Bound now, not on entering the block: a wrong keyword fails at the call, as on the plain agent.
            return self._override_impl(OverrideArguments(**_bind(self._OVERRIDE, args, kwargs, _OVERRIDE_FIELDS)))
