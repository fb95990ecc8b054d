"""A model whose requests are DBOS steps."""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any, cast

from dbos import DBOS, StepOptions
from pydantic_ai.agent import EventStreamHandler
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import Model, ModelRequestContext, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext
from pydantic_ai.usage import RequestUsage

from durable_kernel import (
    CountTokensResult,
    NonRetryableModelErrors,
    cancel_suspended_response,
    consume_model_stream,
    count_tokens_in_unit,
    counted_usage,
    current_request_attempt,
    dbos_model_step_name,
    is_permanent_model_error,
    model_error_retry_predicate,
    recorded_stream_response,
    wrapper_streamed_response,
)

from ._config import StepConfig, step_options
from ._context import in_workflow_code, step_run_context
from ._live_events import current_event_stream_topic, model_stream_publisher

__all__ = ('DBOSModel', 'run_event_stream_handler')

_run_handler: ContextVar[EventStreamHandler[Any] | None] = ContextVar('_durable_dbos_run_handler', default=None)

# DBOS pickles workflow inputs; a `DBOSModel` passed to `run(model=...)` is pickled by its registry key and found
# again in the recovering process, which must construct the same model before `DBOS.launch()` (like the agent). A key
# names one model: a second, different one under it is refused (see `_register`), or a recovered workflow could
# resume with whichever registered last.
_registry: dict[str, DBOSModel] = {}
_registry_lock = threading.Lock()


@contextmanager
def run_event_stream_handler(handler: EventStreamHandler[Any] | None) -> Generator[None]:
    """Make `handler` the one that streamed model steps feed during this agent run (it wins over the model's own)."""
    token = _run_handler.set(handler)
    try:
        yield
    finally:
        _run_handler.reset(token)


def _restore_model(key: str) -> DBOSModel:
    model = _registry.get(key)
    if model is None:
        raise UserError(
            f'A DBOS workflow was started with the run-time model {key!r}, which this process has not constructed. '
            'Construct the same `DBOSModel` (same `step_name_prefix` and wrapped model) before `DBOS.launch()` in '
            'every process that may recover the workflow.'
        )
    return model


class DBOSModel(WrapperModel):
    """A model whose requests (streamed or not) are recorded as DBOS steps, so a recovered workflow reuses their responses.

    Inside a DBOS workflow, `request` is the step `{step_name_prefix}__model.request` and `request_stream` the step
    `{step_name_prefix}__model.request_stream`: the live stream is consumed inside the step (the event stream handler
    sees its events there) and the workflow gets the completed response. The other model operations that talk to the
    provider are steps too: `compact_messages` (`{step_name_prefix}__model.compact_messages`), `count_tokens`
    (`{step_name_prefix}__model.count_tokens`, a count ahead of a request) and, on pydantic-ai 2.x,
    `cancel_suspended_response` (`{step_name_prefix}__model.cancel_suspended_response`). Outside a workflow, or
    inside a step, the wrapped model is called directly.

    Each `DBOSModel` is registered in the process under `{step_name_prefix}:{system}:{model_name}`, the key by which a
    workflow records it as a run-time model. Constructing another one under the same key is allowed only when it is
    the same: it wraps the same model instance, with an equal `step_config`, the same `event_stream_handler` and the
    same `non_retryable_model_errors`; a different one raises a `UserError`.
    """

    def __init__(
        self,
        model: Model,
        *,
        step_name_prefix: str,
        step_config: StepConfig | None = None,
        event_stream_handler: EventStreamHandler[Any] | None = None,
        non_retryable_model_errors: NonRetryableModelErrors = is_permanent_model_error,
    ):
        """Wrap a model.

        Args:
            model: The model to wrap.
            step_name_prefix: The prefix of the step names, normally the agent's name.
            step_config: The DBOS step config of the request steps (DBOS's defaults if not given).
            event_stream_handler: The handler that consumes streamed responses inside the streaming step, unless the
                agent run brings its own.
            non_retryable_model_errors: The model errors that fail a step at once even when `step_config` allows
                retries: exception classes, or a function `error -> bool`. The default,
                [`is_permanent_model_error`][durable_kernel.is_permanent_model_error], covers a 4xx response other
                than 408, 409 and 429, a content filter and a `UserError`; `()` retries every error as `step_config`
                says.

        Raises:
            UserError: A different `DBOSModel` is registered under the same `{step_name_prefix}:{system}:{model_name}`
                key, or `non_retryable_model_errors` is neither exception classes nor a function.
        """
        super().__init__(model)
        self.step_name_prefix = step_name_prefix
        self.step_config: StepConfig = StepConfig(**(step_config or {}))
        self.event_stream_handler = event_stream_handler
        is_non_retryable = model_error_retry_predicate(non_retryable_model_errors)
        # Consulted by DBOS after a failed attempt, when the step config allows retries.
        self._should_retry: Callable[[BaseException], bool] = lambda error: not is_non_retryable(error)
        # Compared when the same key is registered again: a list and a tuple of the same classes are the same rule.
        given: Any = non_retryable_model_errors
        self._non_retryable_model_errors: object = (
            tuple(cast(Sequence[Any], given)) if isinstance(given, Sequence) else given
        )
        self._registry_key = f'{step_name_prefix}:{model.system}:{model.model_name}'
        self._register()

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _restore_model, (self._registry_key,)

    def _register(self) -> None:
        key = self._registry_key
        with _registry_lock:
            registered = _registry.setdefault(key, self)
        if registered is self:
            return
        differences = registered._differences(self)
        if not differences:
            return  # the same model wrapped again: either one serves a recovered workflow alike
        raise UserError(
            f'A different `DBOSModel` is already registered under {key!r} (step-name prefix '
            f'{self.step_name_prefix!r}, system {self.system!r}, model name {self.model_name!r}): this one differs in '
            f'{" and ".join(differences)}. A workflow records its run-time model by this key, so a recovered workflow '
            'could resume with the wrong one. Give this model its own `step_name_prefix=` (for a `DBOSAgent`: its own '
            '`name=`), or reuse the `DBOSModel` constructed first (construct each once, at import time).'
        )

    def _differences(self, other: DBOSModel) -> list[str]:
        """What makes `other` behave differently from this model, as a recovered workflow would use it."""
        differences: list[str] = []
        if other.wrapped is not self.wrapped:
            differences.append('the model instance it wraps')
        if other.step_config != self.step_config:
            differences.append('`step_config`')
        if other.event_stream_handler != self.event_stream_handler:
            differences.append('`event_stream_handler`')
        if other._non_retryable_model_errors != self._non_retryable_model_errors:
            differences.append('`non_retryable_model_errors`')
        return differences

    def _step_options(self, name: str) -> StepOptions:
        options = step_options(name, self.step_config)
        options['should_retry'] = self._should_retry
        return options

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        """Make a model request: a DBOS step inside a workflow."""
        if not in_workflow_code():
            return await self.wrapped.request(messages, model_settings, model_request_parameters)
        options = self._step_options(dbos_model_step_name(self.step_name_prefix))

        async def request_step() -> ModelResponse:
            with step_run_context(None):
                return await self.wrapped.request(messages, model_settings, model_request_parameters)

        return await DBOS.run_step_async(options, request_step)

    async def compact_messages(
        self,
        request_context: ModelRequestContext,
        *,
        instructions: str | None = None,
    ) -> ModelResponse:
        """Compact the conversation with the provider: inside a workflow, a DBOS step whose response is recorded.

        The step is `{step_name_prefix}__model.compact_messages`, so a recovered workflow reuses the compacted
        response instead of asking the provider again.
        """
        if not in_workflow_code():
            return await self.wrapped.compact_messages(request_context, instructions=instructions)

        async def compact_messages_step() -> ModelResponse:
            with step_run_context(None):
                return await self.wrapped.compact_messages(request_context, instructions=instructions)

        options = self._step_options(dbos_model_step_name(self.step_name_prefix, operation='compact_messages'))
        return await DBOS.run_step_async(options, compact_messages_step)

    async def count_tokens(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> RequestUsage:
        """Count a request's tokens ahead of it: inside a workflow, the step `{step_name_prefix}__model.count_tokens`.

        pydantic-ai counts before a request when the run's limits ask for it (`count_tokens_before_request`). The
        count is a call to the provider: the step records what it did (see `durable_kernel.CountTokensResult`), so a
        recovered workflow takes the recorded count instead of counting again.

        Raises:
            NotImplementedError: The model cannot count tokens.
            UserError: The model cannot count this request.
        """
        if not in_workflow_code():
            return await self.wrapped.count_tokens(messages, model_settings, model_request_parameters)

        async def count_tokens_step() -> CountTokensResult:
            with step_run_context(None):
                return await count_tokens_in_unit(self.wrapped, messages, model_settings, model_request_parameters)

        options = self._step_options(dbos_model_step_name(self.step_name_prefix, operation='count_tokens'))
        return counted_usage(await DBOS.run_step_async(options, count_tokens_step), messages)

    async def cancel_suspended_response(self, response: ModelResponse) -> None:
        """Cancel a server-side suspended (background) response, which pydantic-ai 2.x does when it abandons one.

        It is a provider request, so inside a workflow it is the DBOS step
        `{step_name_prefix}__model.cancel_suspended_response`. pydantic-ai 1.107 has no such operation and never
        calls it.
        """
        if not in_workflow_code():
            await cancel_suspended_response(self.wrapped, response)
            return

        async def cancel_suspended_response_step() -> None:
            with step_run_context(None):
                await cancel_suspended_response(self.wrapped, response)

        options = self._step_options(dbos_model_step_name(self.step_name_prefix, operation='cancel_suspended_response'))
        await DBOS.run_step_async(options, cancel_suspended_response_step)

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncGenerator[StreamedResponse]:
        """Make a streamed model request: inside a workflow, a DBOS step that consumes the stream and records the response."""
        if not in_workflow_code():
            async with self.wrapped.request_stream(
                messages, model_settings, model_request_parameters, run_context
            ) as streamed:
                yield streamed
            return

        handler = _run_handler.get() or self.event_stream_handler
        topic = current_event_stream_topic()
        # With a topic, the step publishes the live stream too (and still feeds the handler).
        step_handler = handler if topic is None else model_stream_publisher(topic, handler)

        attempt = current_request_attempt()

        async def consume_stream() -> ModelResponse:
            with step_run_context(run_context) as guarded:
                return await consume_model_stream(
                    self.wrapped,
                    messages,
                    model_settings,
                    model_request_parameters,
                    guarded,
                    step_handler,
                    engine='DBOS',
                    attempt=attempt,
                    execution_attempt=_step_execution_attempt(),
                )

        options = self._step_options(dbos_model_step_name(self.step_name_prefix, stream=True))
        # A workflow pydantic-ai's own durability started before 2.60 recorded more than the response here.
        response = recorded_stream_response(await DBOS.run_step_async(options, consume_stream))
        yield wrapper_streamed_response(response, model_request_parameters, handler_saw_events=handler is not None)


def _step_execution_attempt() -> int:
    """Which execution of the running step this is, from 1: DBOS's own retry attempt of it (zero-based there)."""
    status = DBOS.step_status
    return 1 if status is None or status.current_attempt is None else status.current_attempt + 1
