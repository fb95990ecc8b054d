"""Model errors in model activities: a permanent one fails the activity at once, a `Retry-After` sets the next delay.

Temporal retries a failed activity as its retry policy says, by default for ever. The kernel's
`non_retryable_model_errors` rule says which model errors another attempt cannot fix; such an error leaves the
activity as a non-retryable `ApplicationError`, so the workflow sees the failure after one attempt. A provider that
asked to wait (`Retry-After`) gets that wait as the `ApplicationError`'s `next_retry_delay`, in place of the policy's
backoff. Either way the failure carries the same type name, message, stack and cause as the error Temporal would
have converted itself, so workflow code that inspects it sees what it saw before.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Generator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar, cast

from pydantic_ai import exceptions as pai_exceptions
from pydantic_ai.exceptions import UserError
from temporalio import activity
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

from durable_kernel import retry_after_seconds

__all__ = ('classify_model_errors', 'retry_requests_as_application_errors', 'rebuilt_retry_requests')

RETRY_MODEL_REQUEST_DETAIL = 'pydantic_ai_retry_model_request'
"""The key of the `ApplicationError` detail that carries a `RetryModelRequest`'s model name (wire format: pydantic-ai
2.78's, so that a failure either recorded decodes on the other)."""

# pydantic-ai 2.x: a hook asks for another attempt at the request (1.107 has no such exception: nothing to carry).
_RETRY_MODEL_REQUEST: type[Exception] | None = getattr(pai_exceptions, 'RetryModelRequest', None)

P = ParamSpec('P')
R = TypeVar('R')


def classify_model_errors(
    is_non_retryable: Callable[[BaseException], bool],
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Wrap a model activity function so that its model errors tell Temporal whether and when to retry.

    The wrapper keeps the function's signature and annotations (Temporal reads the argument types from them).
    """

    def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(fn)
        async def classified(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return await fn(*args, **kwargs)
            except FailureError:
                raise  # already says what Temporal should do (e.g. a non-retryable missing history base)
            except Exception as error:
                non_retryable = is_non_retryable(error)
                delay = None if non_retryable else retry_after_seconds(error)
                if not non_retryable and delay is None:
                    raise
                raise _application_error(error, non_retryable, delay).with_traceback(
                    error.__traceback__
                ) from error.__cause__

        return classified

    return decorate


def _application_error(error: Exception, non_retryable: bool, retry_after: float | None) -> ApplicationError:
    # The type and message Temporal gives an exception it converts itself (`DefaultFailureConverter`).
    return ApplicationError(
        str(error),
        type=error.__class__.__name__,
        non_retryable=non_retryable,
        next_retry_delay=None if retry_after is None else _next_retry_delay(retry_after),
    )


def _next_retry_delay(retry_after: float) -> timedelta:
    # A `next_retry_delay` replaces the interval the retry policy computes, so the policy's `maximum_interval` no
    # longer bounds it: cap it there (a quota reset hours away must not park the activity for hours).
    policy: Any = activity.info().retry_policy if activity.in_activity() else None
    policy = policy or RetryPolicy()
    maximum = policy.maximum_interval or policy.initial_interval * 100
    return timedelta(seconds=min(retry_after, maximum.total_seconds()))


@contextmanager
def retry_requests_as_application_errors() -> Generator[None]:
    """In a capability operation's activity: a `RetryModelRequest` the hook raised leaves as an `ApplicationError`.

    Non-retryable, naming the model to attempt; workflow code raises it again (`rebuilt_retry_requests`).

    Raises:
        UserError: The hook named the model to attempt by a model instance, which cannot cross to workflow code.
    """
    if _RETRY_MODEL_REQUEST is None:
        yield
        return
    try:
        yield
    except _RETRY_MODEL_REQUEST as retry:
        model: Any = getattr(retry, 'model', None)
        if model is not None and not isinstance(model, str):
            raise UserError(
                'A `RetryModelRequest` raised by a capability hook that runs as a durable operation names its model by '
                'an instance, which cannot cross back to workflow code: register the model with the durability '
                "capability's `models=` and name it by its key."
            ) from retry
        # The hook's answer, not a failure: another attempt of the activity would give the same one.
        raise ApplicationError(
            str(retry) or 'RetryModelRequest',
            {RETRY_MODEL_REQUEST_DETAIL: {'model': model}},
            type='RetryModelRequest',
            non_retryable=True,
        ) from retry


@contextmanager
def rebuilt_retry_requests() -> Generator[None]:
    """In workflow code: a carried `RetryModelRequest` from a capability operation's activity is raised again.

    For the run's attempt loop, as the hook's own raise would be outside a workflow.
    """
    try:
        yield
    except ActivityError as error:
        cause = error.cause
        if _RETRY_MODEL_REQUEST is None or not isinstance(cause, ApplicationError) or not cause.details:
            raise
        detail: Any = cause.details[0]
        carried: Any = (
            cast('dict[str, Any]', detail).get(RETRY_MODEL_REQUEST_DETAIL) if isinstance(detail, dict) else None
        )
        if not isinstance(carried, dict):
            raise
        model: Any = cast('dict[str, Any]', carried).get('model')
        raise _RETRY_MODEL_REQUEST(model if isinstance(model, str) else None) from error
