"""Reading a streamed model response to the end inside a durable unit, with the event handler watching it live.

A durable engine records results, not streams: inside the activity/step/task the stream is consumed (the user's
event stream handler sees every event as it arrives) and the finished `ModelResponse` is what gets recorded.
"""

from __future__ import annotations

from typing import Any

from pydantic_ai.agent import EventStreamHandler
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext

__all__ = ('consume_model_stream',)


async def consume_model_stream(
    model: Model,
    messages: list[ModelMessage],
    model_settings: ModelSettings | None,
    model_request_parameters: ModelRequestParameters,
    run_context: RunContext[Any] | None,
    handler: EventStreamHandler[Any] | None,
    *,
    engine: str,
) -> ModelResponse:
    """Stream a model request to the end, passing the live stream to `handler` first, and return the response.

    Args:
        model: The model to stream from (the real one, not a durable wrapper).
        messages: The conversation so far.
        model_settings: The request's model settings.
        model_request_parameters: The request parameters (tools, output mode, ...).
        run_context: The run context the handler receives; required when there is a handler.
        handler: The event stream handler, if any. It may stop reading early: the rest is drained here.
        engine: The engine's name, for the error message.

    Returns:
        The complete response.

    Raises:
        UserError: There is a handler but no run context (the model was called outside an agent run).
    """
    if handler is not None and run_context is None:
        raise UserError(
            f'A {engine} model with an event stream handler needs the run context, which only an agent run has: '
            'call it through `agent.run(...)` rather than `pydantic_ai.direct.model_request_stream()`.'
        )
    async with model.request_stream(messages, model_settings, model_request_parameters, run_context) as streamed:
        if handler is not None and run_context is not None:
            await handler(run_context, streamed)
        async for _ in streamed:
            pass
    return streamed.get()
