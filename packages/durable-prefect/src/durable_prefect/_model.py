"""Model requests as Prefect tasks."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, ClassVar

from prefect.context import FlowRunContext
from pydantic_ai.agent import EventStreamHandler
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import KnownModelName, Model, ModelRequestContext, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext
from pydantic_ai.usage import RequestUsage

from durable_kernel import (
    CountTokensResult,
    NonRetryableModelErrors,
    PrefectTaskKind,
    cancel_suspended_response,
    consume_model_stream,
    count_tokens_in_unit,
    counted_usage,
    get_current_run_context,
    is_permanent_model_error,
    model_error_retry_predicate,
    prefect_task_name,
    wrapper_streamed_response,
)

from ._cache_policy import KeyedTaskInput
from ._canonical import key_by_name
from ._live_events import current_channel, model_stream_publisher
from ._result_first import agent_task
from ._task_config import TaskConfig, merge_task_config, with_model_error_retry_condition

__all__ = ('PrefectModel', 'stream_handler_override')

stream_handler_override: ContextVar[EventStreamHandler[Any] | None] = ContextVar(
    'durable_prefect_stream_handler_override', default=None
)
"""An event stream handler given to one agent run, used by streamed model requests instead of the model's own."""


class _ModelRequest(KeyedTaskInput):
    """A model request's arguments: keyed by model, messages, settings, parameters and the run's deps/metadata."""

    __slots__ = ('handler', 'messages', 'model', 'model_request_parameters', 'model_settings', 'run_context')

    def __init__(
        self,
        model: Model,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None,
        handler: EventStreamHandler[Any] | None = None,
    ) -> None:
        self.model = model
        self.messages = messages
        self.model_settings = model_settings
        self.model_request_parameters = model_request_parameters
        self.run_context = run_context
        self.handler = handler

    def cache_material(self) -> Any:
        return {
            'model': self.model,
            'messages': self.messages,
            'model_settings': self.model_settings,
            'model_request_parameters': self.model_request_parameters,
            'run_context': self.run_context,
            'handler': key_by_name(self.handler),
        }


async def _request_model(request: _ModelRequest) -> ModelResponse:
    return await request.model.request(request.messages, request.model_settings, request.model_request_parameters)


async def _request_model_streaming(request: _ModelRequest) -> ModelResponse:
    return await consume_model_stream(
        request.model,
        request.messages,
        request.model_settings,
        request.model_request_parameters,
        request.run_context,
        request.handler,
        engine='Prefect',
    )


class _CompactMessages(KeyedTaskInput):
    """A `compact_messages` call: keyed by model, request context (messages, settings, parameters), instructions."""

    __slots__ = ('instructions', 'model', 'request_context')

    def __init__(self, model: Model, request_context: ModelRequestContext, instructions: str | None) -> None:
        self.model = model
        self.request_context = request_context
        self.instructions = instructions

    def cache_material(self) -> Any:
        return {'model': self.model, 'request_context': self.request_context, 'instructions': self.instructions}


class _SuspendedResponse(KeyedTaskInput):
    """A `cancel_suspended_response` call (pydantic-ai 2.x): keyed by model and response."""

    __slots__ = ('model', 'response')

    def __init__(self, model: Model, response: ModelResponse) -> None:
        self.model = model
        self.response = response

    def cache_material(self) -> Any:
        return {'model': self.model, 'response': self.response}


async def _compact_messages(call: _CompactMessages) -> ModelResponse:
    return await call.model.compact_messages(call.request_context, instructions=call.instructions)


async def _cancel_suspended_response(call: _SuspendedResponse) -> None:
    await cancel_suspended_response(call.model, call.response)


_REQUEST_TASK = agent_task(_request_model)
_STREAM_TASK = agent_task(_request_model_streaming, context='run_context')
_COMPACT_TASK = agent_task(_compact_messages)
_CANCEL_TASK = agent_task(_cancel_suspended_response)


# A task function of its own, beside the ones above (whose sources key their tasks and are pinned): its key is the
# request's (`_ModelRequest`) with this function's source, so a count and the request it counts never share a record.
async def _count_tokens(request: _ModelRequest) -> CountTokensResult:
    return await count_tokens_in_unit(
        request.model, request.messages, request.model_settings, request.model_request_parameters
    )


_COUNT_TASK = agent_task(_count_tokens)


class PrefectModel(WrapperModel):
    """A model whose requests, streamed or not, and other calls to the provider run as Prefect tasks inside a flow.

    Inside a Prefect flow, each request is a task named `Model Request: {model_name}` (or
    `Model Request (Streaming): {model_name}`), whose result Prefect persists and reuses when the flow run is
    retried or resumed. Message compaction is a `Compact Messages: {model_name}` task, a count of a request's tokens
    ahead of it a `Count Tokens: {model_name}` task and, on pydantic-ai 2.x, the cancellation of a suspended response
    a `Model Cancel Suspended Response: {model_name}` task. Outside a flow the wrapped model is called directly.
    """

    # The capability form (`PrefectDurability`) names this task as pydantic-ai 2.x does: `Cancel Suspended Response`.
    _cancel_task_kind: ClassVar[PrefectTaskKind] = 'model_cancel_suspended_response'

    def __init__(
        self,
        model: Model | KnownModelName,
        *,
        task_config: TaskConfig | None = None,
        event_stream_handler: EventStreamHandler[Any] | None = None,
        non_retryable_model_errors: NonRetryableModelErrors = is_permanent_model_error,
    ) -> None:
        """Wrap a model.

        Args:
            model: The model to wrap.
            task_config: Prefect options for the request tasks, on top of
                [`DEFAULT_TASK_CONFIG`][durable_prefect.DEFAULT_TASK_CONFIG].
            event_stream_handler: The handler that receives the events of a streamed request inside its task.
            non_retryable_model_errors: The model errors that fail a task at once even when `task_config` allows
                retries: exception classes, or a function `error -> bool`. The default,
                [`is_permanent_model_error`][durable_kernel.is_permanent_model_error], covers a 4xx response other
                than 408, 409 and 429, a content filter and a `UserError`; `()` retries every error as `task_config`
                says. Other errors are left to `task_config`'s own `retry_condition_fn`, if any.
        """
        super().__init__(model)
        self.task_config: TaskConfig = with_model_error_retry_condition(
            merge_task_config(task_config), model_error_retry_predicate(non_retryable_model_errors)
        )
        self.event_stream_handler = event_stream_handler
        name = self.wrapped.model_name
        self._request_task = _REQUEST_TASK.with_options(
            name=prefect_task_name('model_request', name), **self.task_config
        )
        self._stream_task = _STREAM_TASK.with_options(
            name=prefect_task_name('model_request_stream', name), **self.task_config
        )
        self._compact_task = _COMPACT_TASK.with_options(
            name=prefect_task_name('model_compact_messages', name), **self.task_config
        )
        self._cancel_task = _CANCEL_TASK.with_options(
            name=prefect_task_name(self._cancel_task_kind, name), **self.task_config
        )
        self._count_task = _COUNT_TASK.with_options(
            name=prefect_task_name('model_count_tokens', name), **self.task_config
        )

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        """Send the request: in a `Model Request: {model}` task inside a flow, directly otherwise.

        Args:
            messages: The messages to send.
            model_settings: The model settings.
            model_request_parameters: The request parameters (tools, output schema, ...).

        Returns:
            The model's response.
        """
        if FlowRunContext.get() is None:
            return await super().request(messages, model_settings, model_request_parameters)
        request = _ModelRequest(
            self.wrapped, messages, model_settings, model_request_parameters, get_current_run_context()
        )
        return await self._request_task(request)

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncGenerator[StreamedResponse]:
        """Make a streaming model request.

        Inside a flow, a task reads the whole stream (feeding the event stream handler as it arrives) and the
        caller gets a stream replaying the finished response; outside a flow, the wrapped model streams as usual.

        Args:
            messages: The messages to send.
            model_settings: The model settings.
            model_request_parameters: The request parameters (tools, output schema, ...).
            run_context: The run context, passed to the event stream handler inside the task.

        Yields:
            The streamed response (inside a flow: an already completed one).
        """
        if FlowRunContext.get() is None:
            async with super().request_stream(
                messages, model_settings, model_request_parameters, run_context
            ) as streamed_response:
                yield streamed_response
            return
        handler = stream_handler_override.get() or self.event_stream_handler
        channel = current_channel()
        if channel is not None:
            # With an event stream topic the task publishes the live stream too (the handler is keyed by name, so
            # agents without a topic keep their keys).
            handler = model_stream_publisher(channel, handler)
        request = _ModelRequest(self.wrapped, messages, model_settings, model_request_parameters, run_context, handler)
        response = await self._stream_task(request)
        yield self._recorded_stream(response, model_request_parameters, handler)

    def _recorded_stream(
        self, response: ModelResponse, model_request_parameters: ModelRequestParameters, handler: object
    ) -> StreamedResponse:
        # The capability form overrides this: it always replays the parts.
        return wrapper_streamed_response(response, model_request_parameters, handler_saw_events=handler is not None)

    async def compact_messages(
        self,
        request_context: ModelRequestContext,
        *,
        instructions: str | None = None,
    ) -> ModelResponse:
        """Compact the conversation: in a `Compact Messages: {model}` task inside a flow, directly otherwise.

        Compaction is a provider call whose result replaces history, so a retried flow run must reuse it.

        Args:
            request_context: The messages, settings and parameters of the request being compacted.
            instructions: Instructions for the compaction, if any.

        Returns:
            The model's compaction response.
        """
        if FlowRunContext.get() is None:
            return await super().compact_messages(request_context, instructions=instructions)
        return await self._compact_task(_CompactMessages(self.wrapped, request_context, instructions))

    async def count_tokens(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> RequestUsage:
        """Count a request's tokens ahead of it: in a `Count Tokens: {model}` task inside a flow, directly otherwise.

        pydantic-ai counts before a request when the run's limits ask for it (`count_tokens_before_request`). The
        count is a call to the provider: its task is keyed like the request's, so a retried or resumed flow run takes
        the recorded count (see `durable_kernel.CountTokensResult`) instead of counting again.

        Raises:
            NotImplementedError: The model cannot count tokens.
            UserError: The model cannot count this request.
        """
        if FlowRunContext.get() is None:
            return await super().count_tokens(messages, model_settings, model_request_parameters)
        request = _ModelRequest(
            self.wrapped, messages, model_settings, model_request_parameters, get_current_run_context()
        )
        return counted_usage(await self._count_task(request), messages)

    async def cancel_suspended_response(self, response: ModelResponse) -> None:
        """Cancel a suspended (background) response (pydantic-ai 2.x): in a task inside a flow, directly otherwise.

        The task is named `Model Cancel Suspended Response: {model}`: the cancellation is a provider call, which a
        retried flow run must not repeat once it completed.

        Args:
            response: The suspended response to cancel.
        """
        if FlowRunContext.get() is None:
            await _cancel_suspended_response(_SuspendedResponse(self.wrapped, response))
            return
        await self._cancel_task(_SuspendedResponse(self.wrapped, response))

    # pydantic-ai 2.x's batch API (`BatchModelRequests` wraps this model and calls these): submitting and polling a
    # batch spans processes and days, which no task can hold, so inside a flow it is refused rather than run in flow
    # code outside any task. Outside a flow each call goes to the wrapped model. The types are 2.x's (`Any` here).

    async def batch_encode(self, request: Any) -> Any:
        """Encode a batch request (pydantic-ai 2.x); refused inside a flow, see `batch_create`."""
        return await self._batch_call('batch_encode', request)

    async def batch_create(self, requests: Any) -> Any:
        """Submit a batch (pydantic-ai 2.x), outside a flow only.

        Raises:
            UserError: Inside a flow, where the batch would be submitted and polled outside any task.
        """
        return await self._batch_call('batch_create', requests)

    async def batch_status(self, batch: Any) -> Any:
        """Check a batch (pydantic-ai 2.x); refused inside a flow, see `batch_create`."""
        return await self._batch_call('batch_status', batch)

    async def batch_results(self, batch: Any) -> Any:
        """Read a batch's results (pydantic-ai 2.x); refused inside a flow, see `batch_create`."""
        return await self._batch_call('batch_results', batch)

    async def batch_cancel(self, batch: Any) -> Any:
        """Cancel a batch (pydantic-ai 2.x); refused inside a flow, see `batch_create`."""
        return await self._batch_call('batch_cancel', batch)

    async def _batch_call(self, operation: str, argument: Any) -> Any:
        if FlowRunContext.get() is not None:
            raise UserError(
                f'`{operation}` of the batch API cannot run inside a Prefect flow: a batch is submitted and polled '
                'for up to a day, outside any task, so a retried or resumed flow run would submit it again. Remove '
                '`BatchModelRequests` from the agent (or the run) that a PrefectAgent runs.'
            )
        return await getattr(self.wrapped, operation)(argument)
