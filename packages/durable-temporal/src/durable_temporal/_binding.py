"""What makes one agent durable on Temporal, built once and shared by both forms.

`TemporalAgent` (the wrapper) and `TemporalDurability` (the capability) build the same objects from an agent: the
event-stream-handler activity, the `TemporalModel` with its four model activities, and the agent's leaf toolsets
wrapped for Temporal with their activities. Only how a run reaches them differs (the wrapper overrides the wrapped
agent's model and toolsets; the capability swaps them in its hooks).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, cast

from pydantic import ConfigDict, with_config
from pydantic_ai import messages as pai_messages
from pydantic_ai.agent import AbstractAgent, EventStreamHandler
from pydantic_ai.exceptions import UserError
from pydantic_ai.models import Model
from pydantic_ai.tools import AgentDepsT
from pydantic_ai.toolsets import AbstractToolset
from pydantic_core import PydanticSerializationError
from temporalio import activity
from temporalio.workflow import ActivityConfig

from durable_kernel import (
    ARGS_VALIDATOR_UNITS,
    CapabilityOperation,
    CapabilityOperationOutcome,
    EventStreamTopic,
    NonRetryableModelErrors,
    require_toolset_id,
    require_unique_toolset_ids,
    run_operation_in_unit,
    temporal_activity_name_with_prefix,
    temporal_activity_prefix,
    temporal_capability_operation_activity_name,
)

from ._config import (
    LocalActivity,
    LocalScope,
    ToolActivityConfig,
    ToolSetting,
    execute_unit,
    local_activity_config,
    merge_activity_config,
)
from ._continue_as_new import ContinueAsNewAfter, ContinueAsNewHandler, continue_as_new_policy
from ._deps_refs import deps_for_activity
from ._external_events import TemporalEventWait, external_event_ask_activity
from ._function_toolset import TemporalFunctionToolset
from ._heartbeat import heartbeating_activity
from ._model import TemporalModel, TemporalProviderFactory
from ._model_errors import rebuilt_retry_requests, retry_requests_as_application_errors
from ._run_context import TemporalRunContext, resolve_activity_context
from ._toolset import ActivityToolset, TemporalWrapperToolset

__all__ = (
    'CapabilityOperationParams',
    'EventStreamHandlerParams',
    'TemporalBinding',
    'TemporalizeToolsetFunc',
    'build_binding',
    'serialization_user_error',
)

TemporalizeToolsetFunc = Callable[
    [
        AbstractToolset[AgentDepsT],
        str,
        ActivityConfig,
        dict[str, ActivityConfig | Literal[False]],
        type[AgentDepsT],
        type[TemporalRunContext[AgentDepsT]],
        AbstractAgent[AgentDepsT, Any] | None,
    ],
    AbstractToolset[AgentDepsT],
]
"""Wraps a leaf toolset for Temporal: `(toolset, activity_name_prefix, activity_config, tool_activity_config,
deps_type, run_context_type, agent) -> toolset` (six-argument functions without `agent` are accepted too)."""


@dataclass
@with_config(ConfigDict(arbitrary_types_allowed=True))
class EventStreamHandlerParams:
    """Argument of the event-stream-handler activity (field names are wire format).

    The reference's payload carries one `event`; ours carries `events` (a batch) and `event=None`.
    """

    event: pai_messages.AgentStreamEvent | None
    serialized_run_context: Any
    events: list[pai_messages.AgentStreamEvent] | None = None


@dataclass
class CapabilityOperationParams:
    """Argument of a capability operation's activity (field names are wire format: pydantic-ai 2.78's).

    Attributes:
        arguments: The call's arguments by parameter name, as JSON data (the run context left out).
        serialized_run_context: The run context, as for every activity.
        model_id: The run's model by its key (`None`: the agent's default), which the activity builds again and gives
            the operation's run context (an operation on a request context gets the model its projection names).
    """

    arguments: dict[str, Any]
    serialized_run_context: Any
    model_id: str | None = None


@dataclass
class TemporalBinding(Generic[AgentDepsT]):
    """The durable objects of one agent on Temporal (see the module docstring)."""

    prefix: str
    """`agent__{name}`, the start of every activity name."""
    event_stream_handler_activity: Callable[..., Any]
    model: TemporalModel
    toolsets: list[AbstractToolset[AgentDepsT]]
    """The agent's toolsets with their leaves replaced by their Temporal twins."""
    durable_toolsets: dict[str, AbstractToolset[AgentDepsT]]
    """The Temporal twin of each leaf toolset, by toolset id."""
    activities: list[Callable[..., Any]]
    """Every activity, in registration order: event handler, model, each toolset's, then the external-event ask."""
    local: LocalScope = field(default_factory=LocalScope)
    """Which units run as local activities (the event handler's: `local.events`)."""
    operation_activities: dict[tuple[str, str], Callable[..., Any]] = field(
        default_factory=dict[tuple[str, str], Callable[..., Any]]
    )
    """The activity of each durable capability operation, by `(capability id, operation)`."""
    operations: dict[tuple[str, str], CapabilityOperation] = field(
        default_factory=dict[tuple[str, str], CapabilityOperation]
    )
    """The durable operations of the agent's capabilities, each with its activity."""
    operation_activity_config: ActivityConfig = field(default_factory=lambda: ActivityConfig())
    """The config of the capability operations' activities (the base config, as pydantic-ai 2.78's)."""
    run_context_type: type[TemporalRunContext[Any]] = TemporalRunContext
    run_model_key: Callable[[Any], str | None] | None = None
    """The key of the run's model for a capability operation's activity (the capability form's: by the run context);
    `None`: the model the wrapper's run selected."""

    async def run_operation(
        self, operation: CapabilityOperation, ctx: Any, arguments: dict[str, Any]
    ) -> CapabilityOperationOutcome:
        """Run a capability operation's activity from workflow code (the `OperationUnit` of both forms).

        Raises:
            RetryModelRequest: The operation's hook asked for another attempt at the request (pydantic-ai 2.x).
        """
        activity_fn = self.operation_activities[(operation.capability_id, operation.name)]
        serialized, deps = deps_for_activity(self.run_context_type, ctx)
        model_id = self.run_model_key(ctx) if self.run_model_key is not None else self.model.current_key()
        params = CapabilityOperationParams(arguments=arguments, serialized_run_context=serialized, model_id=model_id)
        summary = f'capability: {operation.capability_id}.{operation.name}'
        config = merge_activity_config({'summary': summary}, self.operation_activity_config)
        with rebuilt_retry_requests():
            return await execute_unit(activity_fn, [params, deps], config, local=False)

    async def resolve_request_model(self, ctx: Any, key: str | None) -> Model:
        """In workflow code: the model a durable hook's returned request context names by its key (a swap)."""
        return self.model.resolve(key)

    external_event_wait: TemporalEventWait | None = None
    """The durable wait for external events of the agent's runs (its local activity is the last of `activities`)."""

    def child_workflows(self) -> list[type]:
        """The child workflow types to register: those of function toolsets with a tool that selects one now."""
        workflows: list[type] = []
        for toolset in self.durable_toolsets.values():
            if isinstance(toolset, TemporalFunctionToolset):
                workflows.extend(toolset.temporal_workflows)
        return workflows


def _positional_arity(func: Callable[..., Any]) -> int:
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in inspect.signature(func).parameters.values() if p.kind in kinds)


def build_binding(
    agent: AbstractAgent[AgentDepsT, Any],
    *,
    agent_name: str,
    event_stream_handler: Callable[[], EventStreamHandler[AgentDepsT] | None],
    model_event_stream_handler: EventStreamHandler[AgentDepsT] | None,
    models: Mapping[str, Model] | None,
    provider_factory: TemporalProviderFactory | None,
    activity_config: ActivityConfig,
    model_activity_config: ActivityConfig | None,
    toolset_activity_config: Mapping[str, ActivityConfig] | None,
    tool_activity_config: Mapping[str, Mapping[str, ToolSetting]] | None,
    deps_type: type[Any],
    run_context_type: type[TemporalRunContext[AgentDepsT]],
    temporalize_toolset_func: TemporalizeToolsetFunc[AgentDepsT],
    non_retryable_model_errors: NonRetryableModelErrors,
    event_stream_topic: EventStreamTopic | None = None,
    continue_as_new: ContinueAsNewHandler[AgentDepsT] | None = None,
    continue_as_new_after: ContinueAsNewAfter | None = None,
    local: LocalScope | None = None,
    validate_args_in_activities: bool = False,
    operations: Mapping[tuple[str, str], CapabilityOperation] | None = None,
) -> TemporalBinding[AgentDepsT]:
    """Build the activities, durable model and durable toolsets of `agent`.

    Args:
        agent: The agent whose model and toolsets are made durable (re-attached as `ctx.agent` in activities).
        agent_name: The name in activity names.
        event_stream_handler: Returns the handler the event-stream-handler activity calls (read when it runs).
        model_event_stream_handler: The handler the streamed model activity gives the live stream to.
        models: Models selectable by key inside a workflow.
        provider_factory: Builds the provider of a model given as a string inside the model activity.
        activity_config: The base config of every activity (already merged with our defaults).
        model_activity_config: Merged on top of the base for the model activities.
        toolset_activity_config: By toolset id, merged on top of the base for that toolset's activities.
        tool_activity_config: By toolset id then tool name, merged on top of the toolset's.
        deps_type: What activities receive as `deps` (the agent's deps type, or a resolver's reference type).
        run_context_type: The context type carrying the run context into activities (with any deps resolver).
        temporalize_toolset_func: Wraps each leaf toolset.
        non_retryable_model_errors: Model errors that fail a model activity at once.
        event_stream_topic: The topic the streamed model activity publishes the live model stream to.
        continue_as_new: Called before a model request when the workflow should continue as new.
        continue_as_new_after: Limits past which it should, besides Temporal's suggestion.
        local: Which units run as local activities (the same activities, run with `execute_local_activity`).
        validate_args_in_activities: Run function tools' `args_validator`s in `validate_args` activities where the
            installed pydantic-ai's `TemporalDurability` does (`ARGS_VALIDATOR_UNITS`): the capability form.
        operations: The durable operations of the agent's capabilities, each given an activity.
    """
    policy = continue_as_new_policy(continue_as_new, continue_as_new_after)
    local = local or LocalScope()
    prefix = temporal_activity_prefix(agent_name)

    async def event_stream_handler_activity(params: EventStreamHandlerParams, deps: Any) -> None:
        handler = event_stream_handler()
        if handler is None:
            return
        ctx = await resolve_activity_context(
            run_context_type, params.serialized_run_context, deps=deps, deps_type=deps_type, agent=agent
        )

        async def events() -> AsyncIterable[pai_messages.AgentStreamEvent]:
            for event in params.events or ([] if params.event is None else [params.event]):
                yield event

        await handler(ctx, events())

    event_stream_handler_activity.__annotations__['deps'] = deps_type
    event_activity = activity.defn(name=temporal_activity_name_with_prefix(prefix, 'event_stream_handler'))(
        heartbeating_activity(event_stream_handler_activity)
    )
    activities: list[Callable[..., Any]] = [event_activity]

    model_config = merge_activity_config(activity_config, model_activity_config)
    if local.model:
        local_activity_config(model_config)  # refuses a `task_queue` now rather than in the first workflow
    temporal_model = TemporalModel(
        agent.model if isinstance(agent.model, Model) else None,
        default_model_id=agent.model if isinstance(agent.model, str) else None,
        activity_name_prefix=prefix,
        activity_config=model_config,
        deps_type=deps_type,
        run_context_type=run_context_type,
        event_stream_handler=model_event_stream_handler,
        models=models,
        provider_factory=provider_factory,
        agent=agent,
        non_retryable_model_errors=non_retryable_model_errors,
        event_stream_topic=event_stream_topic,
        local=local.model,
    )
    # The rule lives in the durable model's workflow-side request, the one place both forms go through.
    temporal_model.continue_as_new = policy
    activities.extend(temporal_model.temporal_activities)

    toolset_configs = toolset_activity_config or {}
    tool_configs = tool_activity_config or {}
    pass_agent = _positional_arity(temporalize_toolset_func) > 6
    durable_toolsets: dict[str, AbstractToolset[AgentDepsT]] = {}

    def make_durable(toolset: AbstractToolset[AgentDepsT]) -> AbstractToolset[AgentDepsT]:
        toolset_id = require_toolset_id(toolset, engine='Temporal')
        toolset_config = merge_activity_config(activity_config, toolset_configs.get(toolset_id))
        if local.tools:
            local_activity_config(toolset_config)  # refuses a `task_queue` now rather than in the first workflow
        per_tool: dict[str, ToolActivityConfig] = {}
        local_tools: set[str] = set()
        for tool_name, setting in tool_configs.get(toolset_id, {}).items():
            if isinstance(setting, LocalActivity):
                local_activity_config(merge_activity_config(toolset_config, setting.config))
                local_tools.add(tool_name)
                # The wrapper gets the config alone (its argument's type is unchanged) and the name in `local_tools`.
                per_tool[tool_name] = cast(ActivityConfig, dict(setting.config or {}))
            else:
                per_tool[tool_name] = setting
        args: list[Any] = [
            toolset,
            prefix,
            toolset_config,
            per_tool,
            deps_type,
            run_context_type,
        ]
        if pass_agent:
            args.append(agent)
        durable = temporalize_toolset_func(*args)
        if isinstance(durable, TemporalFunctionToolset) and validate_args_in_activities and ARGS_VALIDATOR_UNITS:
            # Before its activities are read: the validate-args activity is registered only where it runs.
            durable.validate_args_in_activity = True
        if isinstance(durable, TemporalWrapperToolset):
            activities.extend(durable.temporal_activities)
        if isinstance(durable, ActivityToolset):
            # Attributes, not arguments: `temporalize_toolset_func`'s signature is public and stays as it is.
            durable.local_activities = local.tools
            durable.local_tools = frozenset(local_tools)
        elif local_tools:
            raise UserError(
                f'Toolset {toolset_id!r} is wrapped by a `{type(durable).__name__}`, which does not run tools as local '
                f'activities: `LocalActivity` in `tool_activity_config` ({", ".join(sorted(local_tools))}) needs a '
                'toolset wrapped by `temporalize_toolset` (or an `ActivityToolset` subclass).'
            )
        durable_toolsets[toolset_id] = durable
        return durable

    # Activities are named after toolset ids: two toolsets under one id would share them.
    require_unique_toolset_ids(agent.toolsets, engine='Temporal')
    toolsets = [toolset.visit_and_replace(make_durable) for toolset in agent.toolsets]
    operation_activities: dict[tuple[str, str], Callable[..., Any]] = {}
    for key, operation in (operations or {}).items():
        operation_activities[key] = _operation_activity(
            operation,
            prefix=prefix,
            agent=agent,
            deps_type=deps_type,
            run_context_type=run_context_type,
            model=temporal_model,
        )
    activities.extend(operation_activities.values())
    # Registered last on every line, as pydantic-ai 2.78 registers it (a release without external events never
    # schedules it).
    ask_activity = external_event_ask_activity(prefix)
    activities.append(ask_activity)
    return TemporalBinding(
        prefix=prefix,
        event_stream_handler_activity=event_activity,
        model=temporal_model,
        toolsets=toolsets,
        durable_toolsets=durable_toolsets,
        activities=unique_activities(activities),
        local=local,
        operation_activities=operation_activities,
        operations=dict(operations or {}),
        operation_activity_config=activity_config,
        run_context_type=run_context_type,
        external_event_wait=TemporalEventWait(ask_activity, activity_config),
    )


def _operation_activity(
    operation: CapabilityOperation,
    *,
    prefix: str,
    agent: AbstractAgent[Any, Any],
    deps_type: type[Any],
    run_context_type: type[TemporalRunContext[Any]],
    model: TemporalModel,
) -> Callable[..., Any]:
    """The activity `agent__{name}__capability__{id}__{operation}` that runs one capability operation."""

    async def capability_operation_activity(params: CapabilityOperationParams, deps: Any) -> CapabilityOperationOutcome:
        ctx = await resolve_activity_context(
            run_context_type, params.serialized_run_context, deps=deps, deps_type=deps_type, agent=agent
        )
        # The model the call names, built here as the model activities build it: the request's own (its projection's
        # key) for an operation on a request context, else the run's.
        projection = operation.request_projection(params.arguments)
        key = projection.model_id if projection is not None else params.model_id
        unit_model = await model.model_for_unit(key, ctx)
        with retry_requests_as_application_errors():
            return await run_operation_in_unit(
                operation, ctx, params.arguments, model=unit_model, model_key=model.key_for, run_model=unit_model
            )

    capability_operation_activity.__annotations__['deps'] = deps_type
    name = temporal_capability_operation_activity_name(prefix, operation.capability_id, operation.name)
    return activity.defn(name=name)(heartbeating_activity(capability_operation_activity))


def unique_activities(activities: list[Callable[..., Any]]) -> list[Callable[..., Any]]:
    """`activities`, after checking that no two share a name.

    Raises:
        UserError: Two toolsets would register the same activity name.
    """
    seen: dict[str, Callable[..., Any]] = {}
    for fn in activities:
        definition = activity._Definition.must_from_callable(fn)  # pyright: ignore[reportPrivateUsage, reportUnknownMemberType]
        name = definition.name or ''
        if name in seen:
            raise UserError(
                f'Two toolsets of this agent would register the activity {name!r}: give every leaf toolset a unique '
                '`id=`.'
            )
        seen[name] = fn
    return activities


def serialization_user_error(error: PydanticSerializationError, deps_resolver_keyword: str) -> UserError:
    """The `UserError` for an activity argument pydantic could not serialize (`deps`, usually).

    Args:
        error: The serialization error.
        deps_resolver_keyword: Where the user registers a `DepsResolver`, e.g. `'TemporalAgent(deps_resolver=...)'`.
    """
    return UserError(
        f'A value sent to a Temporal activity could not be serialized: {error}. Activity arguments (notably '
        '`deps`) must be serializable by pydantic: use plain data, dataclasses or pydantic models, and create '
        'clients and connections inside tools, or register a `DepsResolver` '
        f'(`{deps_resolver_keyword}`) so that activities receive a reference and rebuild the deps.'
    )
