"""A model whose requests are DBOS steps."""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator, Generator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any

from dbos import DBOS
from pydantic_ai.agent import EventStreamHandler
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import Model, ModelRequestContext, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext

from durable_kernel import (
    cancel_suspended_response,
    completed_streamed_response,
    consume_model_stream,
    dbos_model_step_name,
)

from ._config import StepConfig, step_options
from ._context import in_workflow_code

__all__ = ('DBOSModel', 'run_event_stream_handler')

_run_handler: ContextVar[EventStreamHandler[Any] | None] = ContextVar('_durable_dbos_run_handler', default=None)

# DBOS pickles workflow inputs; a `DBOSModel` passed to `run(model=...)` is pickled by its registry key and found
# again in the recovering process, which must construct the same model before `DBOS.launch()` (like the agent).
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
    provider are steps too: `compact_messages` (`{step_name_prefix}__model.compact_messages`) and, on pydantic-ai
    2.x, `cancel_suspended_response` (`{step_name_prefix}__model.cancel_suspended_response`). Outside a workflow, or
    inside a step, the wrapped model is called directly.
    """

    def __init__(
        self,
        model: Model,
        *,
        step_name_prefix: str,
        step_config: StepConfig | None = None,
        event_stream_handler: EventStreamHandler[Any] | None = None,
    ):
        """Wrap a model.

        Args:
            model: The model to wrap.
            step_name_prefix: The prefix of the step names, normally the agent's name.
            step_config: The DBOS step config of the request steps (DBOS's defaults if not given).
            event_stream_handler: The handler that consumes streamed responses inside the streaming step, unless the
                agent run brings its own.
        """
        super().__init__(model)
        self.step_name_prefix = step_name_prefix
        self.step_config: StepConfig = StepConfig(**(step_config or {}))
        self.event_stream_handler = event_stream_handler
        self._registry_key = f'{step_name_prefix}:{model.system}:{model.model_name}'
        with _registry_lock:
            _registry[self._registry_key] = self

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _restore_model, (self._registry_key,)

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        """Make a model request: a DBOS step inside a workflow."""
        if not in_workflow_code():
            return await self.wrapped.request(messages, model_settings, model_request_parameters)
        options = step_options(dbos_model_step_name(self.step_name_prefix), self.step_config)
        return await DBOS.run_step_async(
            options, self.wrapped.request, messages, model_settings, model_request_parameters
        )

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
            return await self.wrapped.compact_messages(request_context, instructions=instructions)

        options = step_options(
            dbos_model_step_name(self.step_name_prefix, operation='compact_messages'), self.step_config
        )
        return await DBOS.run_step_async(options, compact_messages_step)

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
            await cancel_suspended_response(self.wrapped, response)

        options = step_options(
            dbos_model_step_name(self.step_name_prefix, operation='cancel_suspended_response'), self.step_config
        )
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

        async def consume_stream() -> ModelResponse:
            return await consume_model_stream(
                self.wrapped, messages, model_settings, model_request_parameters, run_context, handler, engine='DBOS'
            )

        options = step_options(dbos_model_step_name(self.step_name_prefix, stream=True), self.step_config)
        response = await DBOS.run_step_async(options, consume_stream)
        yield completed_streamed_response(response, model_request_parameters)
