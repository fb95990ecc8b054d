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
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

from temporalio import activity
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, FailureError

from durable_kernel import retry_after_seconds

__all__ = ('classify_model_errors',)

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
