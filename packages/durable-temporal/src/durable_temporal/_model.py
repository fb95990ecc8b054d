"""Model requests (plain and streamed) in Temporal activities, with the model chosen per run."""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from pydantic import ConfigDict, with_config
from pydantic_ai import models
from pydantic_ai.agent import EventStreamHandler
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import (
    Model,
    ModelRequestContext,
    ModelRequestParameters,
    StreamedResponse,
    infer_model_profile,
    parse_model_id,
)
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.profiles import ModelProfile
from pydantic_ai.providers import Provider
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext
from pydantic_ai.usage import RequestUsage
from temporalio import activity, workflow
from temporalio.workflow import ActivityConfig

from durable_kernel import (
    CountTokensResult,
    EventStreamTopic,
    NonRetryableModelErrors,
    cancel_suspended_response,
    completed_streamed_response,
    consume_model_stream,
    count_tokens_in_unit,
    counted_usage,
    current_request_attempt,
    get_current_run_context,
    is_permanent_model_error,
    model_error_retry_predicate,
    prepare_messages,
    prepare_messages_in_unit,
    record_response_model_id,
    request_telemetry_ids,
    resolve_model_id_by_capabilities,
    restore_request_telemetry_ids,
    stream_step_uncounted,
    temporal_activity_name_with_prefix,
)

from ._config import execute_unit, merge_activity_config
from ._continue_as_new import ContinueAsNewPolicy, register_model, take_carried_base
from ._deps_refs import deps_for_activity
from ._heartbeat import heartbeating
from ._live_events import workflow_stream_event_handler
from ._message_history import Delta, HistoryBase, WorkflowHistories, rebuild_messages, remember_request
from ._model_errors import classify_model_errors
from ._run_context import TemporalRunContext, resolve_activity_context
from ._versioning import DURABLE_COUNT_TOKENS_PATCH

if TYPE_CHECKING:
    from pydantic_ai.agent import AbstractAgent

__all__ = (
    'CancelSuspendedResponseParams',
    'CompactMessagesParams',
    'ModelRequestParams',
    'TemporalModel',
    'TemporalProviderFactory',
)

TemporalProviderFactory = Callable[[RunContext[Any], str], Provider[Any]]
"""Builds the provider of a model given as a string at run time: `(run_context, provider_name) -> Provider`."""

DEFAULT_MODEL_KEY = 'default'


@dataclass
@with_config(ConfigDict(arbitrary_types_allowed=True))
class ModelRequestParams:
    """Argument of the model-request activities (field names are wire format).

    With `history_base` set, `messages` holds only what follows the first `history_keep` messages of the conversation
    of model activity `history_base` (its request, then its response), whose digest is `history_digest`; see
    `_message_history`.
    """

    messages: list[ModelMessage]
    # A plain dict: a `ModelSettings` annotation would drop the keys only a provider's settings subclass defines.
    model_settings: dict[str, Any] | None
    model_request_parameters: ModelRequestParameters
    serialized_run_context: Any
    model_id: str | None = None
    # Excluded from `ModelRequestParameters` serialization, so it travels beside it. The name is 1.107's; on 2.x the
    # same ids live in another field (see `durable_kernel.request_telemetry_ids`), so payloads of either line decode.
    telemetry_sensitive_ids: set[str] | None = None
    history_index: int | None = None
    history_base: int | None = None
    history_keep: int = 0
    # The digest of the reused messages, checked by the activity; absent from what older workers scheduled.
    history_digest: str | None = None
    # The earlier workflow run whose model activity `history_base` names (the first request after a continue-as-new).
    history_run_id: str | None = None
    # The attempt at the request step (pydantic-ai 2.78's `ModelRequestContext.attempt`; 1 before it), which the
    # streamed events' `origin` records; the name is 2.78's own activity argument's. Absent from older payloads.
    attempt: int = 1


@dataclass
@with_config(ConfigDict(arbitrary_types_allowed=True))
class CompactMessagesParams:
    """Argument of the compact-messages activity (field names are wire format).

    `serialized_run_context` is `None` when the compaction was asked for outside an agent run.
    """

    messages: list[ModelMessage]
    model_settings: dict[str, Any] | None
    model_request_parameters: ModelRequestParameters
    serialized_run_context: Any
    instructions: str | None = None
    model_id: str | None = None
    telemetry_sensitive_ids: set[str] | None = None


@dataclass
@with_config(ConfigDict(arbitrary_types_allowed=True))
class CancelSuspendedResponseParams:
    """Argument of the cancel-suspended-response activity (field names are wire format).

    `serialized_run_context` is `None` when the cancellation was asked for outside an agent run.
    """

    response: ModelResponse
    serialized_run_context: Any
    model_id: str | None = None


class TemporalModel(WrapperModel):
    """Sends model requests to activities in workflow code; a plain wrapper of the default model elsewhere."""

    def __init__(
        self,
        model: Model | None,
        *,
        default_model_id: str | None = None,
        activity_name_prefix: str,
        activity_config: ActivityConfig,
        deps_type: type[Any],
        run_context_type: type[TemporalRunContext[Any]],
        event_stream_handler: EventStreamHandler[Any] | None,
        models: Mapping[str, Model] | None,
        provider_factory: TemporalProviderFactory | None,
        agent: AbstractAgent[Any, Any] | None,
        non_retryable_model_errors: NonRetryableModelErrors = is_permanent_model_error,
        event_stream_topic: EventStreamTopic | None = None,
        local: bool = False,
    ) -> None:
        registry: dict[str, Model] = {}
        if model is not None:
            registry[DEFAULT_MODEL_KEY] = model
        for key, registered in (models or {}).items():
            if key == DEFAULT_MODEL_KEY:
                raise UserError(
                    f"The key {DEFAULT_MODEL_KEY!r} in `models` is reserved for the wrapped agent's own model: "
                    'register the model under another key.'
                )
            registry[key] = registered
        # A string default (pydantic-ai 2.x keeps `Agent('openai:gpt-5')` unresolved until a run): sent by that string,
        # and built in the activity, with the run's deps, as 2.x's capability form does. Its registered model if the
        # string is a `models=` key; otherwise workflow code only needs its name and profile.
        if model is None and default_model_id is not None:
            model = registry.get(default_model_id) or _ModelByName(default_model_id)
        if not registry and model is None:
            raise UserError(
                'TemporalAgent needs a model instance: give the wrapped agent a `model`, or pass '
                '`models={"name": model}` to TemporalAgent. A model cannot be chosen only at run time inside a '
                'workflow, because its activity must exist when the worker starts.'
            )
        super().__init__(model or next(iter(registry.values())))
        self._registry = registry
        # The key a run without `model=` uses: the agent's own model, else the first entry of `models`, sent by its key
        # so that `run()` and `run(model=<first key>)` schedule the same activities.
        self._default_key: str | None = (
            default_model_id if default_model_id is not None else None if model is not None else next(iter(registry))
        )
        self.activity_config = merge_activity_config(activity_config)
        self.run_context_type = run_context_type
        self.event_stream_handler = event_stream_handler
        self.event_stream_topic = event_stream_topic
        self.local = local
        """Whether the model activities run as local activities (`local_activities=`)."""
        self._provider_factory = provider_factory
        self._agent = agent
        self._model_key: ContextVar[str | None] = ContextVar('durable_temporal_model_key', default=None)
        self._histories = WorkflowHistories()
        # The key of this agent's conversation in a hand-over: its first model activity's name (unique per agent).
        self._history_key = temporal_activity_name_with_prefix(activity_name_prefix, 'model_request')
        self.continue_as_new: ContinueAsNewPolicy | None = None
        """When and how the workflow continues as new before a model request (set by the binding)."""
        self._deps_type = deps_type
        names = (
            temporal_activity_name_with_prefix(activity_name_prefix, 'model_request'),
            temporal_activity_name_with_prefix(activity_name_prefix, 'model_request_stream'),
        )
        # The names pydantic-ai 2.x's own `TemporalAgent` gives the same operations.
        compact_name = temporal_activity_name_with_prefix(activity_name_prefix, 'model_compact_messages')
        cancel_name = temporal_activity_name_with_prefix(activity_name_prefix, 'model_cancel_suspended_response')
        count_name = temporal_activity_name_with_prefix(activity_name_prefix, 'model_count_tokens')

        async def request(params: ModelRequestParams, deps: Any) -> ModelResponse:
            ctx = await self._activity_context(params, deps)
            chosen = await self._activity_model(params.model_id, ctx)
            rebuilt = await rebuild_messages(params, ModelRequestParams, names)
            async with heartbeating():
                response = await chosen.request(
                    self._unit_messages(params, chosen, rebuilt.messages),
                    cast(ModelSettings | None, params.model_settings),
                    params.model_request_parameters,
                )
            response = record_response_model_id(response, self._model_id_for_key(params.model_id))
            remember_request(params, names, rebuilt, response)
            return response

        async def request_stream(params: ModelRequestParams, deps: Any) -> ModelResponse:
            ctx = await self._activity_context(params, deps)
            chosen = await self._activity_model(params.model_id, ctx)
            rebuilt = await rebuild_messages(params, ModelRequestParams, names)
            # The handler sees the live stream here, in the activity, where I/O is allowed; so does the topic.
            handler = self.event_stream_handler
            if self.event_stream_topic is not None:
                handler = workflow_stream_event_handler(self.event_stream_topic, handler=handler)
            async with heartbeating():  # with a heartbeat timeout, a dead worker's stream is retried within it
                response = await consume_model_stream(
                    chosen,
                    self._unit_messages(params, chosen, rebuilt.messages),
                    cast(ModelSettings | None, params.model_settings),
                    params.model_request_parameters,
                    ctx,
                    handler,
                    engine='Temporal',
                    attempt=params.attempt,
                    # A retried activity streams the same response again: its events' origin says which execution.
                    execution_attempt=activity.info().attempt,
                )
            response = record_response_model_id(response, self._model_id_for_key(params.model_id))
            remember_request(params, names, rebuilt, response)
            return response

        async def compact(params: CompactMessagesParams, deps: Any) -> ModelResponse:
            ctx = await self._optional_activity_context(params.serialized_run_context, deps)
            chosen = await self._activity_model(params.model_id, ctx)
            restore_request_telemetry_ids(params.model_request_parameters, params.telemetry_sensitive_ids)
            request_context = ModelRequestContext(
                model=chosen,
                messages=params.messages,
                model_settings=cast(ModelSettings | None, params.model_settings),
                model_request_parameters=params.model_request_parameters,
            )
            return await chosen.compact_messages(request_context, instructions=params.instructions)

        async def cancel(params: CancelSuspendedResponseParams, deps: Any) -> None:
            ctx = await self._optional_activity_context(params.serialized_run_context, deps)
            await cancel_suspended_response(await self._activity_model(params.model_id, ctx), params.response)

        async def count(params: ModelRequestParams, deps: Any) -> CountTokensResult:
            restore_request_telemetry_ids(params.model_request_parameters, params.telemetry_sensitive_ids)
            # `None` when the count was asked for outside an agent run (a direct `count_tokens` call in workflow code).
            ctx = await self._optional_activity_context(params.serialized_run_context, deps)
            chosen = await self._activity_model(params.model_id, ctx)
            # Sent as a delta on the earlier model requests, as a request is (a count recorded whole, by the reference
            # or before counts were deltas, has no base and is its own conversation). Nothing is remembered: no
            # request builds on a count.
            rebuilt = await rebuild_messages(params, ModelRequestParams, names)
            return await count_tokens_in_unit(
                chosen,
                self._unit_messages(params, chosen, rebuilt.messages),
                cast(ModelSettings | None, params.model_settings),
                params.model_request_parameters,
            )

        for fn in (request, request_stream, compact, cancel, count):
            # `None` as well: payloads recorded before deps were sent carry none.
            fn.__annotations__['deps'] = deps_type | None
        classified = classify_model_errors(model_error_retry_predicate(non_retryable_model_errors))
        self.request_activity = activity.defn(name=names[0])(classified(request))
        self.request_stream_activity = activity.defn(name=names[1])(classified(request_stream))
        self.compact_messages_activity = activity.defn(name=compact_name)(classified(compact))
        self.cancel_suspended_response_activity = activity.defn(name=cancel_name)(classified(cancel))
        self.count_tokens_activity = activity.defn(name=count_name)(classified(count))

    @property
    def temporal_activities(self) -> list[Callable[..., Any]]:
        """The activities of the model: request, streamed request, compact messages, cancel, count tokens.

        The cancel-suspended-response activity is only scheduled on pydantic-ai 2.x (1.107 has no suspended
        responses); it is registered on both lines so that a worker's activities do not depend on the installed line.
        """
        return [
            self.request_activity,
            self.request_stream_activity,
            self.compact_messages_activity,
            self.cancel_suspended_response_activity,
            self.count_tokens_activity,
        ]

    # --- model choice -------------------------------------------------------------------------------------------

    def key_for(self, model: Model | str | None) -> str | None:
        """The registry key (or provider string) to send to the activity for a `run(model=...)` argument.

        Raises:
            UserError: `model` is a model instance that was not registered with `models=`.
        """
        if model is None or model == DEFAULT_MODEL_KEY:
            return self._default_key
        if isinstance(model, Model):
            for key, registered in self._registry.items():
                if registered is model:
                    return None if key == DEFAULT_MODEL_KEY else key
            raise UserError(
                'This model instance is not registered with the TemporalAgent, and a model instance cannot cross into '
                'an activity. Register it with `TemporalAgent(..., models={"name": model})` and pass the instance or '
                '"name" to `run(model=...)`, or pass a provider string such as "openai:gpt-5".'
            )
        return model

    def resolve(self, model: Model | str | None) -> Model:
        """The model instance for a `run(model=...)` argument outside a workflow (any instance is fine there)."""
        if isinstance(model, Model):
            return model
        return self._model_for_key(self.key_for(model), None)

    @contextmanager
    def using_model(self, model: Model | str | None) -> Generator[None]:
        """Use `model` (a registered instance, a key, a provider string or `None`) for requests in this block."""
        token = self._model_key.set(self.key_for(model))
        try:
            yield
        finally:
            self._model_key.reset(token)

    def use_key(self, key: str | None) -> None:
        """Use `key` for the requests of the current `using_model` block (its end restores the block's own key)."""
        self._model_key.set(key)

    def current_key(self) -> str | None:
        """The key of the model requests use now in workflow code (`None`: the agent's own model)."""
        return self._model_key.get()

    async def model_for_unit(self, key: str | None, ctx: RunContext[Any] | None) -> Model:
        """Inside an activity: the model `key` names, built as the model activities build it."""
        # `None` is what a run without `model=` uses: a string default is sent by that string (see `__init__`).
        return await self._activity_model(key if key is not None else self._default_key, ctx)

    def _model_for_key(self, key: str | None, ctx: RunContext[Any] | None) -> Model:
        if key is None:
            return self.wrapped
        registered = self._registry.get(key)
        if registered is not None:
            return registered
        if self._provider_factory is not None and ctx is not None:
            return models.infer_model(key, provider_factory=functools.partial(self._provider_factory, ctx))
        return models.infer_model(key)

    async def _activity_model(self, key: str | None, ctx: RunContext[Any] | None) -> Model:
        # Inside a model activity: a string that is no key is first offered to the agent's `resolve_model_id`
        # capabilities (pydantic-ai 2.x) with the run's deps, as the workflow resolved it, then built by name.
        if key is not None and key not in self._registry and ctx is not None and self._agent is not None:
            resolved = await resolve_model_id_by_capabilities(self._agent, ctx.deps, key)
            if resolved is not None:
                return resolved
        if key is None or key in self._registry or (self._provider_factory is not None and ctx is not None):
            # The user's own `provider_factory` errors reach them unchanged.
            return self._model_for_key(key, ctx)
        try:
            return models.infer_model(key)
        except (UserError, ValueError) as error:
            raise UserError(
                f'The model {key!r} could not be built in the model activity: it is not a `models=` key, no '
                f'`resolve_model_id` capability of the agent resolved it, and `infer_model` cannot build it ({error}). '
                'Register the model under that key, or resolve the string with a `ResolveModelId` capability in every '
                'worker.'
            ) from error

    def _unit_messages(
        self, params: ModelRequestParams, chosen: Model, messages: list[ModelMessage]
    ) -> list[ModelMessage]:
        # In the model activity: a model selected by a string (not a `models=` key) is the one workflow code could not
        # prepare the history for (see `prepare_messages`), so it is prepared here, with the concrete model.
        if params.model_id is None or params.model_id in self._registry:
            return messages
        return prepare_messages_in_unit(chosen, messages, params.model_request_parameters)

    def _current(self) -> Model | str:
        key = self._model_key.get()
        if key is None:
            return self.wrapped
        return self._registry.get(key, key)

    def _model_id_for_key(self, key: str | None) -> str:
        # What `model_id` is while `key` is the current model: computed the same way in workflow code (where the
        # agent records it on each response) and in the model activities (which record it first, see `request`).
        if key is None:
            return self.wrapped.model_id
        registered = self._registry.get(key)
        return key if registered is None else registered.model_id

    @property
    def model_id(self) -> str:
        """The current model's id: a registered model's own, or the provider string as given."""
        return self._model_id_for_key(self._model_key.get())

    @property
    def model_name(self) -> str:
        """The current model's name (parsed from a provider string without building the provider)."""
        current = self._current()
        return parse_model_id(current)[1] if isinstance(current, str) else current.model_name

    @property
    def system(self) -> str:
        """The current model's provider name."""
        current = self._current()
        if isinstance(current, str):
            return parse_model_id(current)[0] or self.wrapped.system
        return current.system

    @property
    def profile(self) -> ModelProfile:
        """The current model's profile (a plain property: the current model changes per run)."""
        current = self._current()
        if not isinstance(current, str):
            return current.profile
        try:
            return infer_model_profile(current)
        except (ImportError, UserError, ValueError):
            # The provider's SDK is only needed where the request runs (the activity, which prepares the request
            # again with the real model); workflow code only uses the profile for capability checks.
            return self.wrapped.profile

    def customize_request_parameters(self, model_request_parameters: ModelRequestParameters) -> ModelRequestParameters:
        """Customize with the current model's rules."""
        current = self._current()
        if isinstance(current, str):
            return Model.customize_request_parameters(self, model_request_parameters)
        return current.customize_request_parameters(model_request_parameters)

    def prepare_request(
        self, model_settings: ModelSettings | None, model_request_parameters: ModelRequestParameters
    ) -> tuple[ModelSettings | None, ModelRequestParameters]:
        """Prepare with the current model's profile."""
        current = self._current()
        if isinstance(current, str):
            return Model.prepare_request(self, model_settings, model_request_parameters)
        return current.prepare_request(model_settings, model_request_parameters)

    def prepare_messages(
        self, messages: list[ModelMessage], model_request_parameters: ModelRequestParameters | None = None
    ) -> list[ModelMessage]:
        """Pre-process messages with the current model's profile.

        `model_request_parameters` is given by pydantic-ai 2.x only (1.107's `prepare_messages` takes the messages
        alone).
        """
        current = self._current()
        if isinstance(current, (str, _ModelByName)):
            # A model selected by a string exists only in the activity, which prepares the history for it (see
            # `_unit_messages`): preparing it here would decide from a profile inferred from the string, and lossily
            # (a tool revealed during the run would be announced here as one model needs, not as the one requested).
            return messages
        if model_request_parameters is None:
            return current.prepare_messages(messages)
        return prepare_messages(current, messages, model_request_parameters)

    # --- requests ---------------------------------------------------------------------------------------------

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        """Request in the `model_request` activity inside a workflow, directly elsewhere."""
        if not workflow.in_workflow():
            return await super().request(messages, model_settings, model_request_parameters)
        ctx = get_current_run_context()
        if ctx is None:
            raise UserError(
                'A Temporal model needs the run context, which `pydantic_ai.direct.model_request()` does not have: '
                'use `agent.run()` inside the workflow.'
            )
        await self._maybe_continue_as_new(ctx)
        params, deps, delta = self._params(messages, model_settings, model_request_parameters, ctx)
        response: ModelResponse = await execute_unit(
            self.request_activity, [params, deps], self._options('request model'), local=self.local
        )
        self._sent(delta, messages, response, ctx)
        return response

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncGenerator[StreamedResponse]:
        """Stream in the `model_request_stream` activity inside a workflow (the event handler runs there)."""
        if not workflow.in_workflow():
            async with super().request_stream(
                messages, model_settings, model_request_parameters, run_context
            ) as streamed:
                yield streamed
            return
        if run_context is None:
            raise UserError(
                'A Temporal model needs the run context, which `pydantic_ai.direct.model_request_stream()` does not '
                'have: set an `event_stream_handler` and use `agent.run()` inside the workflow.'
            )
        if self.local:
            # Refused, not run as a regular activity instead: the history would then hold both kinds of unit for
            # the same agent depending on how a run was started. See `check_local_streaming` for the why.
            raise UserError(
                'A streamed model request cannot run as a local activity (`local_activities=True` or `"model"`): '
                "it needs heartbeats, so that Temporal retries a dead worker's request, which only a regular activity "
                'has. Run the agent without an event stream handler (or `run_stream`) inside the workflow, or use '
                '`local_activities="tools"`.'
            )
        # pydantic-ai 2.33 has counted this step already, though nothing was requested yet: a hand-over must not carry
        # that request to the next run, which makes it again.
        with stream_step_uncounted(run_context):
            await self._maybe_continue_as_new(run_context)
        params, deps, delta = self._params(messages, model_settings, model_request_parameters, run_context)
        response: ModelResponse = await execute_unit(
            self.request_stream_activity, [params, deps], self._options('request model', ' (stream)'), local=False
        )
        self._sent(delta, messages, response, run_context)
        yield completed_streamed_response(response, model_request_parameters)

    async def count_tokens(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> RequestUsage:
        """Count a request's tokens in the `model_count_tokens` activity inside a workflow, directly elsewhere.

        pydantic-ai counts before a request when the run's limits ask for it (`count_tokens_before_request`). The
        count is a request to the provider, so in a workflow it is an activity whose recorded result a replay reuses,
        under the `pydantic_ai:durable_count_tokens` marker that pydantic-ai 2.78 records at the same point. A history
        recorded without it (before counts were activities) replays as it ran: counted in workflow code.

        Raises:
            NotImplementedError: The model cannot count tokens.
            UserError: The model cannot count this request; or, in a history without the marker, the current model
                was selected by a string, which only the activity can build.
        """
        if not workflow.in_workflow():
            return await super().count_tokens(messages, model_settings, model_request_parameters)
        if not workflow.patched(DURABLE_COUNT_TOKENS_PATCH):
            current = self._current()
            if isinstance(current, (str, _ModelByName)):
                raise UserError(
                    'Tokens cannot be counted ahead of a request in this workflow: it was started before counts ran '
                    'in an activity, and its model is selected by a string, which workflow code cannot build.'
                )
            return await current.count_tokens(messages, model_settings, model_request_parameters)
        ctx = get_current_run_context()
        if ctx is not None:
            # Before the count, as before a request: a workflow continuing as new then counts and requests in its next
            # run, instead of counting here and again there (pydantic-ai 2.78 continues before the count as well).
            await self._maybe_continue_as_new(ctx)
        serialized, deps = self._optional_activity_arguments(ctx)
        params = ModelRequestParams(
            messages=messages,
            model_settings=cast(dict[str, Any] | None, model_settings),
            model_request_parameters=model_request_parameters,
            serialized_run_context=serialized,
            model_id=self._model_key.get(),
            telemetry_sensitive_ids=request_telemetry_ids(model_request_parameters),
        )
        if not self.local:
            # Each count would otherwise record the whole conversation again, the history growing with the square of
            # the turns as the reference's requests did; a local activity's input is not recorded (see `_params`).
            self._send_delta(params, messages, ctx.run_id if ctx is not None else None, count=True)
        result: CountTokensResult = await execute_unit(
            self.count_tokens_activity, [params, deps], self._options('count tokens'), local=self.local
        )
        return counted_usage(result, messages)

    async def compact_messages(
        self, request_context: ModelRequestContext, *, instructions: str | None = None
    ) -> ModelResponse:
        """Compact the conversation in the `model_compact_messages` activity inside a workflow, directly elsewhere.

        Compaction is a request to the provider (I/O), which workflow code cannot do: a capability such as
        `OpenAICompaction` calling it in a workflow gets the recorded result of an activity instead.
        """
        if not workflow.in_workflow():
            return await super().compact_messages(request_context, instructions=instructions)
        ctx = get_current_run_context()
        serialized, deps = self._optional_activity_arguments(ctx)
        parameters = request_context.model_request_parameters
        params = CompactMessagesParams(
            messages=list(request_context.messages),
            model_settings=cast(dict[str, Any] | None, request_context.model_settings),
            model_request_parameters=parameters,
            serialized_run_context=serialized,
            instructions=instructions,
            model_id=self._model_key.get(),
            telemetry_sensitive_ids=request_telemetry_ids(parameters),
        )
        return await execute_unit(
            self.compact_messages_activity, [params, deps], self._options('compact messages'), local=self.local
        )

    async def cancel_suspended_response(self, response: ModelResponse) -> None:
        """Cancel a suspended (background) response in the `model_cancel_suspended_response` activity in a workflow.

        pydantic-ai 2.x calls it when a run abandons a server-side job; the cancellation is a request to the provider
        (I/O), which workflow code cannot do. Outside a workflow it is the current model's own.
        """
        if not workflow.in_workflow():
            await cancel_suspended_response(self.wrapped, response)
            return
        serialized, deps = self._optional_activity_arguments(get_current_run_context())
        params = CancelSuspendedResponseParams(
            response=response, serialized_run_context=serialized, model_id=self._model_key.get()
        )
        await execute_unit(
            self.cancel_suspended_response_activity,
            [params, deps],
            self._options('cancel suspended response'),
            local=self.local,
        )

    def _params(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        parameters: ModelRequestParameters,
        ctx: RunContext[Any],
    ) -> tuple[ModelRequestParams, Any, Delta | None]:
        """The activity arguments (messages as a delta on earlier model activities; large deps only once).

        For local activities: the whole conversation and the deps inline, and no delta.
        """
        if parameters.allow_image_output:
            raise UserError(
                'Image output cannot be used inside a Temporal workflow: generated images exceed the 2 MB payload '
                'limit of activity results. Generate images in an activity of your own, or outside the workflow.'
            )
        serialized, deps = deps_for_activity(self.run_context_type, ctx, local=self.local)
        params = ModelRequestParams(
            messages=messages,
            model_settings=cast(dict[str, Any] | None, model_settings),
            model_request_parameters=parameters,
            serialized_run_context=serialized,
            model_id=self._model_key.get(),
            telemetry_sensitive_ids=request_telemetry_ids(parameters),
            attempt=current_request_attempt(),
        )
        if self.local:
            # A local activity's input is not recorded in the history (only its result, in a marker): sending the
            # whole conversation costs no history bytes, and a delta could not be rebuilt by another worker, which
            # finds no scheduled model activities in the history to rebuild it from.
            return params, deps, None
        return params, deps, self._send_delta(params, messages, ctx.run_id)

    def _send_delta(
        self, params: ModelRequestParams, messages: list[ModelMessage], run_id: str | None, *, count: bool = False
    ) -> Delta:
        """Make `params` carry `messages` as a delta on the agent's earlier model requests in this workflow.

        A request (`count=False`) takes the next position, which later requests may build on; a count takes none.
        """
        histories = self._histories.current()
        register_model(self._history_key, self)
        carried = take_carried_base(self._history_key)
        if carried is not None:
            histories.seed(*carried)
        delta = histories.count_delta(messages, run_id or '') if count else histories.delta(messages, run_id or '')
        params.messages = delta.messages
        params.history_base, params.history_keep = delta.base, delta.keep
        params.history_index = None if count else delta.index
        params.history_digest = delta.digest
        params.history_run_id = delta.run_id
        return delta

    async def _maybe_continue_as_new(self, ctx: RunContext[Any]) -> None:
        # Before the request is scheduled: the conversation handed over then ends with it, so the next run sends it
        # and no completed model or tool call is repeated.
        policy = self.continue_as_new
        if policy is not None:
            await policy.before_model_request(ctx, self, self._histories.current().scheduled)

    def history_base(self) -> HistoryBase | None:
        """In workflow code: the model activity a later run of this workflow can build its first request on."""
        return self._histories.current().latest(workflow.info().run_id)

    def resume_from(self, base: HistoryBase, messages: list[ModelMessage]) -> None:
        """In workflow code: let this run's first model request build on `base`, from the run that continued as new."""
        self._histories.current().seed(base, messages)

    def _sent(
        self, delta: Delta | None, messages: list[ModelMessage], response: ModelResponse, ctx: RunContext[Any]
    ) -> None:
        if delta is None:
            return
        self._histories.current().sent(delta, messages, response, ctx.run_id or '')

    def _options(self, operation: str, suffix: str = '') -> ActivityConfig:
        key = self._model_key.get()
        summary = f'{operation}: {key or self.model_id}{suffix}'
        return cast(ActivityConfig, {'summary': summary, **self.activity_config})

    def _optional_activity_arguments(self, ctx: RunContext[Any] | None) -> tuple[Any, Any]:
        if ctx is None:
            return None, None
        return deps_for_activity(self.run_context_type, ctx, local=self.local)

    async def _optional_activity_context(self, serialized_run_context: Any, deps: Any) -> RunContext[Any] | None:
        if serialized_run_context is None:
            return None
        return await resolve_activity_context(
            self.run_context_type,
            serialized_run_context,
            deps=deps,
            deps_type=self._deps_type,
            agent=self._agent,
        )

    async def _activity_context(self, params: ModelRequestParams, deps: Any) -> RunContext[Any]:
        restore_request_telemetry_ids(params.model_request_parameters, params.telemetry_sensitive_ids)
        return await resolve_activity_context(
            self.run_context_type,
            params.serialized_run_context,
            deps=deps,
            deps_type=self._deps_type,
            agent=self._agent,
        )


class _ModelByName(Model):
    """Stands for a default model given as a string in workflow code, where only its name and profile are read.

    Its requests are never made: the workflow sends the string to the model activity, which builds the model.
    """

    def __init__(self, model_id: str) -> None:
        super().__init__()
        self._model_id = model_id

    @property
    def model_name(self) -> str:
        """The model's name, parsed from the string."""
        return parse_model_id(self._model_id)[1]

    @property
    def system(self) -> str:
        """The provider's name, parsed from the string."""
        return parse_model_id(self._model_id)[0] or 'unknown'

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:  # pragma: no cover - the activity builds the real model
        """Never called: the string is built into a model in the activity."""
        raise UserError(f'The model {self._model_id!r} is built in the model activity, not in workflow code.')
