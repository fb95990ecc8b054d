"""The arguments of one agent run (or one `override`) as a single value that engine hooks receive and forward.

[`DurableWrapperAgent`][durable_kernel.DurableWrapperAgent] declares the long public signatures once and packs the
arguments into these dataclasses, so an engine changes what it needs with `dataclasses.replace` and forwards the rest
with [`RunArguments.run_kwargs`][durable_kernel.RunArguments.run_kwargs] instead of re-listing every parameter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic

from pydantic_ai import messages as pai_messages
from pydantic_ai import models
from pydantic_ai import usage as pai_usage
from pydantic_ai.agent import EventStreamHandler
from pydantic_ai.agent.abstract import AgentMetadata, AgentModelSettings, AgentRetries
from pydantic_ai.capabilities import AgentCapability
from pydantic_ai.exceptions import UserError
from pydantic_ai.output import OutputSpec
from pydantic_ai.tools import AgentDepsT, AgentNativeTool, DeferredToolResults, Tool, ToolFuncEither
from pydantic_ai.toolsets import AbstractToolset

from ._compat import RUN_KEYWORDS_2, UNSET, AgentInstructions, Unset, entry_point_parameters, is_set

if TYPE_CHECKING:
    from pydantic_ai.agent.spec import AgentSpec

__all__ = ('OverrideArguments', 'RunArguments', 'UserPrompt')

UserPrompt = str | Sequence[pai_messages.UserContent] | None
"""The `user_prompt` of a run."""

# Keyword arguments of `run`/`run_sync`/`run_stream` that `iter` and `run_stream_events` do not take.
_RUN_ONLY_FIELDS = frozenset({'event_stream_handler'})

# The keyword arguments the installed line's entry points declare: a field of ours that the line does not have (a 2.x
# keyword on 1.107) is never passed on, so the same dataclass serves both lines.
_RUN_PARAMETERS = entry_point_parameters('run')
_OVERRIDE_PARAMETERS = entry_point_parameters('override')


@dataclass(kw_only=True)
class RunArguments(Generic[AgentDepsT]):
    """Every argument of one call of `run`, `run_sync`, `run_stream`, `run_stream_events` or `iter`.

    Field names and defaults are those of the keyword arguments of
    [`AbstractAgent.run`][pydantic_ai.agent.AbstractAgent.run] on either pydantic-ai line: the keywords that 2.x
    added (`conversation`, `run_id`, `cancellation_token`, `timeout`, `workspace`, `compact`) are typed `Any` here
    because their types do not exist on 1.107 (or on 2.x before 2.78, for `compact`), where they keep their defaults:
    `None`, and `False` for `compact`. `event_stream_handler` is always `None` for the entry
    points that do not take it (`iter`, `run_stream_events`); `deps` has no default because its type is generic.
    Keyword arguments the signature does not name (the agent's deprecated aliases) are kept, untouched, in
    `deprecated_kwargs`.
    """

    user_prompt: UserPrompt = None
    output_type: OutputSpec[Any] | None = None
    conversation: Any = None
    message_history: Sequence[pai_messages.ModelMessage] | None = None
    deferred_tool_results: DeferredToolResults | None = None
    conversation_id: str | None = None
    run_id: str | None = None
    model: models.Model | models.KnownModelName | str | None = None
    instructions: AgentInstructions[AgentDepsT] = None
    deps: AgentDepsT
    model_settings: AgentModelSettings[AgentDepsT] | None = None
    usage_limits: pai_usage.UsageLimits | None = None
    cancellation_token: Any = None
    timeout: float | None = None
    usage: pai_usage.RunUsage | None = None
    metadata: AgentMetadata[AgentDepsT] | None = None
    retries: int | AgentRetries | None = None
    infer_name: bool = True
    toolsets: Sequence[AbstractToolset[AgentDepsT]] | None = None
    event_stream_handler: EventStreamHandler[AgentDepsT] | None = None
    capabilities: Sequence[AgentCapability[AgentDepsT]] | None = None
    workspace: Any = None
    spec: dict[str, Any] | AgentSpec | None = None
    compact: Any = False
    deprecated_kwargs: dict[str, Any] = field(default_factory=dict[str, Any])

    def refuse_run_keywords(self, *, carried: Collection[str], refused: Mapping[str, str], where: str) -> None:
        """Refuse the pydantic-ai 2.x run keywords given to this call that the engine cannot carry into a durable run.

        One rule for every engine: each keyword of [`RUN_KEYWORDS_2`][durable_kernel.RUN_KEYWORDS_2] is either carried
        or refused with its reason, and a keyword in neither collection (one that a later pydantic-ai adds) is refused
        until an engine says how to carry it: never silently dropped. On 1.107 none is ever given.

        Args:
            carried: The keywords the engine carries into its durable run.
            refused: The keywords it refuses, each with why and what to use instead.
            where: Where the keyword was given, for the message (for example "`run` of a `DBOSAgent`").

        Raises:
            UserError: A keyword that is not carried was given.
        """
        for keyword in self.given_keywords(RUN_KEYWORDS_2):
            if keyword in carried:
                continue
            reason = refused.get(keyword, 'this version does not know how to carry it into a durable run yet.')
            raise UserError(f'`{keyword}=` cannot be passed to {where}: {reason}')

    def given_keywords(self, names: Iterable[str]) -> list[str]:
        """Which of the named keyword arguments this call gave a value other than its default.

        Args:
            names: Field names, for example [`RUN_KEYWORDS_2`][durable_kernel.RUN_KEYWORDS_2].

        Returns:
            The names whose value is not the field's default (`None`; `False` for `compact`), in the order given.
        """
        return [name for name in names if getattr(self, name) != _FIELD_DEFAULTS.get(name)]

    @classmethod
    def from_kwargs(cls, user_prompt: UserPrompt, kwargs: Mapping[str, Any]) -> RunArguments[Any]:
        """Rebuild the arguments from the keyword arguments [`run_kwargs`][durable_kernel.RunArguments.run_kwargs] made.

        Names that are not fields go to `deprecated_kwargs`, so the round trip keeps every argument.

        Args:
            user_prompt: The run's user prompt.
            kwargs: The run's keyword arguments (for example a durable unit's recorded inputs).

        Returns:
            The run's arguments.
        """
        names = {f.name for f in dataclasses.fields(cls)} - {'user_prompt', 'deprecated_kwargs'}
        known = {key: value for key, value in kwargs.items() if key in names}
        rest = {key: value for key, value in kwargs.items() if key not in names}
        known.setdefault('deps', None)
        return RunArguments[Any](user_prompt=user_prompt, deprecated_kwargs=rest, **known)

    def run_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of `run`, `run_sync` and `run_stream` (everything but `user_prompt`).

        Returns:
            A new dict: every field (the deprecated keyword arguments included) by its parameter name.
        """
        kwargs = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name in _RUN_PARAMETERS}
        del kwargs['user_prompt']
        return {**kwargs, **self.deprecated_kwargs}

    def iter_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of `iter` and `run_stream_events`: those of `run` without `event_stream_handler`.

        Returns:
            A new dict, as [`run_kwargs`][durable_kernel.RunArguments.run_kwargs] without the run-only arguments.
        """
        kwargs = self.run_kwargs()
        for name in _RUN_ONLY_FIELDS - self.deprecated_kwargs.keys():
            del kwargs[name]
        return kwargs


@dataclass(kw_only=True)
class OverrideArguments(Generic[AgentDepsT]):
    """Every argument of one call of [`override`][pydantic_ai.agent.AbstractAgent.override].

    An argument that was not given is `pydantic_ai.UNSET` (`spec`: `None`), exactly as in the signature;
    `metadata` and `workspace` exist on pydantic-ai 2.x only (on 1.107 they stay unset), `capabilities` on 2.78+ only.
    """

    name: str | Unset = UNSET
    deps: AgentDepsT | Unset = UNSET
    model: models.Model | models.KnownModelName | str | Unset = UNSET
    toolsets: Sequence[AbstractToolset[AgentDepsT]] | Unset = UNSET
    tools: Sequence[Tool[AgentDepsT] | ToolFuncEither[AgentDepsT, ...]] | Unset = UNSET
    native_tools: Sequence[AgentNativeTool[AgentDepsT]] | Unset = UNSET
    instructions: AgentInstructions[AgentDepsT] | Unset = UNSET
    model_settings: AgentModelSettings[AgentDepsT] | Unset = UNSET
    retries: int | AgentRetries | Unset = UNSET
    metadata: Any = UNSET
    spec: dict[str, Any] | AgentSpec | None = None
    workspace: Any = UNSET
    capabilities: Any = UNSET
    deprecated_kwargs: dict[str, Any] = field(default_factory=dict[str, Any])

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of `override`.

        Returns:
            A new dict: every field (the deprecated keyword arguments included) by its parameter name.
        """
        kwargs = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name in _OVERRIDE_PARAMETERS}
        return {**kwargs, **self.deprecated_kwargs}

    def given_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of `override` that were given (not unset; `spec` not `None`).

        Returns:
            A new dict, as [`kwargs`][durable_kernel.OverrideArguments.kwargs] without the arguments left at their
            defaults, so that it suits any agent's `override`, whatever keywords its line adds.
        """
        return {
            name: value
            for name, value in self.kwargs().items()
            if is_set(value) and not (name == 'spec' and value is None)
        }


# The defaults of the run keywords, by name: `given_keywords` compares with them (`compact` defaults to `False`, the
# others to `None`), so an explicit `compact=False` counts as not given, as the plain agent treats it.
_FIELD_DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in dataclasses.fields(RunArguments) if f.default is not dataclasses.MISSING
}
