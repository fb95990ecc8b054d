"""Reading a streamed model response to the end inside a durable unit, with the event handler watching it live.

A durable engine records results, not streams: inside the activity/step/task the stream is consumed (the user's
event stream handler sees every event as it arrives) and the finished `ModelResponse` is what gets recorded.

On pydantic-ai 2.78+ the events carry the `origin` the plain agent stamps on its model stream's events (run id, run
step, the attempt at the request step), plus which execution of the unit streamed them: a consumer drops the events
of an execution a later one supersedes, as it drops the events of a replaced attempt.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Generator
from contextlib import aclosing, contextmanager
from contextvars import ContextVar
from typing import Any

from pydantic_ai.agent import EventStreamHandler
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext

from ._compat import current_request_attempt, response_origin, with_response_origin

__all__ = ('consume_model_stream', 'unit_execution_attempt')

_EXECUTION_ATTEMPT: ContextVar[int | None] = ContextVar('durable_kernel_unit_execution_attempt', default=None)


@contextmanager
def unit_execution_attempt(attempt: int) -> Generator[None]:
    """Declare which execution of the durable unit running inside this is (the engine's attempt, from 1).

    For an engine whose unit function cannot take it as an argument (Prefect: the task functions' source is part of
    every task's cache key): [`consume_model_stream`][durable_kernel.consume_model_stream] reads it when it is not
    given `execution_attempt=`.

    Args:
        attempt: The engine's attempt of the unit, starting at 1.
    """
    token = _EXECUTION_ATTEMPT.set(attempt)
    try:
        yield
    finally:
        _EXECUTION_ATTEMPT.reset(token)


async def _stamped(events: AsyncIterable[Any], origin: Any) -> AsyncGenerator[Any]:
    async for event in events:
        yield with_response_origin(event, origin)


async def consume_model_stream(
    model: Model,
    messages: list[ModelMessage],
    model_settings: ModelSettings | None,
    model_request_parameters: ModelRequestParameters,
    run_context: RunContext[Any] | None,
    handler: EventStreamHandler[Any] | None,
    *,
    engine: str,
    attempt: int | None = None,
    execution_attempt: int | None = None,
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
        attempt: The attempt at the request step (pydantic-ai 2.78's `ModelRequestContext.attempt`), read on the
            workflow side and carried into the unit; `None`: the ambient one (the same task, as on DBOS and Prefect).
        execution_attempt: Which execution of the unit this is (the engine's attempt, from 1); `None`: the one
            declared with [`unit_execution_attempt`][durable_kernel.unit_execution_attempt], else 1.

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
    origin = response_origin(
        run_context,
        attempt=current_request_attempt() if attempt is None else attempt,
        execution_attempt=execution_attempt if execution_attempt is not None else _EXECUTION_ATTEMPT.get() or 1,
    )
    async with model.request_stream(messages, model_settings, model_request_parameters, run_context) as streamed:
        if handler is not None and run_context is not None:
            if origin is None:
                await handler(run_context, streamed)
            else:
                # Stamped as the plain agent's stream stamps them; closed here, so the drain below reads on from
                # wherever the handler stopped.
                async with aclosing(_stamped(streamed, origin)) as events:
                    await handler(run_context, events)
        async for _ in streamed:
            pass
    return streamed.get()
