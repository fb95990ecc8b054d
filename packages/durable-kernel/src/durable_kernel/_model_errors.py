"""Which model errors a durable engine retries, and how long the provider asked it to wait.

Every engine retries a failed model unit (Temporal's default retry policy does so for ever), which is right for a
rate limit or an overloaded provider and wrong for a request that cannot succeed: a rejected API key or a malformed
request kept a Temporal workflow running, with one model activity attempt after another, until someone noticed. The
rules that tell the two apart are the same on every engine, so they live here; each engine turns a "do not retry"
into its own primitive (a non-retryable `ApplicationError`, a DBOS step's `should_retry`, a Prefect task's
`retry_condition_fn`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, TypeAlias, cast

from pydantic.errors import PydanticUserError
from pydantic_ai.exceptions import ContentFilterError, FallbackExceptionGroup, ModelHTTPError, UserError

from ._compat import (
    PERMANENT_MODEL_ERROR_CATEGORIES,
    RETRYABLE_MODEL_ERROR_CATEGORIES,
    model_error_headers,
    model_error_retry_after,
)

__all__ = (
    'NonRetryableModelErrors',
    'is_permanent_model_error',
    'model_error_retry_predicate',
    'retry_after_seconds',
)

NonRetryableModelErrors: TypeAlias = Sequence[type[BaseException]] | Callable[[BaseException], bool]
"""The model errors a durable agent does not retry: exception classes (an error is not retried when it is an instance
of one of them), or a function that returns `True` for an error that must not be retried.

The default is [`is_permanent_model_error`][durable_kernel.is_permanent_model_error]. Classes replace that rule, as
pydantic-ai 2.x's `non_retryable_model_errors` does; a function can extend it
(`lambda error: is_permanent_model_error(error) or isinstance(error, MyError)`). `()` retries every model error as the
engine's retry configuration says. An exception group (`FallbackModel`'s, when every model failed) is not retried when
none of its errors is to be retried."""

RETRYABLE_CLIENT_ERROR_STATUSES: frozenset[int] = frozenset({408, 409, 429})
"""The HTTP 4xx statuses that another attempt can get past: request timeout, conflict, too many requests."""


def is_permanent_model_error(error: BaseException) -> bool:
    """Whether a model request that failed with `error` would fail the same way if it were sent again.

    Not retried (the default of `non_retryable_model_errors` on every engine):

    - `UserError` and pydantic's `PydanticUserError`: a misconfiguration.
    - `ContentFilterError`: the provider refused the content, and refuses it again.
    - `ModelHTTPError` with a 4xx status other than 408, 409 and 429 (a bad request, a rejected API key, an unknown
      model, ...), and on pydantic-ai 2.x the errors of the `ModelRequestRejectedError` and `ModelQuotaExceededError`
      categories, with or without a status.
    - An exception group (`FallbackModel`'s) whose errors are all permanent.

    Everything else is retried: 5xx, 408, 409 and 429 responses, connection errors and timeouts, and on 2.x the
    rate-limit, unavailable, server and connection categories even when the status is a 4xx (a provider that says
    to retry).

    Args:
        error: What the model request raised.

    Returns:
        `True` if retrying cannot help.
    """
    return _for_each_error(error, _is_permanent)


def _is_permanent(error: BaseException) -> bool:
    if isinstance(error, (UserError, PydanticUserError, ContentFilterError)):
        return True
    if isinstance(error, RETRYABLE_MODEL_ERROR_CATEGORIES):
        return False
    if isinstance(error, PERMANENT_MODEL_ERROR_CATEGORIES):
        return True
    if isinstance(error, ModelHTTPError):
        return 400 <= error.status_code < 500 and error.status_code not in RETRYABLE_CLIENT_ERROR_STATUSES
    return False


def _for_each_error(error: BaseException, is_non_retryable: Callable[[BaseException], bool]) -> bool:
    # Every model of a `FallbackModel` failed: worth retrying when one of them may succeed, as the next attempt tries
    # that model again.
    if isinstance(error, FallbackExceptionGroup):
        errors: Sequence[BaseException] = error.exceptions
        return bool(errors) and all(_for_each_error(member, is_non_retryable) for member in errors)
    return is_non_retryable(error)


def model_error_retry_predicate(non_retryable_model_errors: NonRetryableModelErrors) -> Callable[[BaseException], bool]:
    """Check a `non_retryable_model_errors` argument and return the function that applies it to an error.

    Args:
        non_retryable_model_errors: Exception classes, or a function `error -> bool`.

    Returns:
        A function that returns `True` for an error the engine must not retry (an exception group: when all its
        errors are).

    Raises:
        UserError: The argument is neither a sequence of exception classes nor a function.
    """
    value: Any = non_retryable_model_errors
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        classes = tuple(cast(Sequence[Any], value))
        if all(isinstance(cls, type) and issubclass(cls, BaseException) for cls in classes):
            error_classes = cast(tuple[type[BaseException], ...], classes)
            return lambda error: _for_each_error(error, lambda member: isinstance(member, error_classes))
    elif callable(value) and not isinstance(value, type):
        rule = cast(Callable[[BaseException], bool], value)
        return lambda error: _for_each_error(error, rule)
    raise UserError(
        '`non_retryable_model_errors` must be a sequence of exception classes (e.g. `(ModelHTTPError,)`) or a '
        'function that takes an exception and returns whether it must not be retried, not '
        f'{non_retryable_model_errors!r}.'
    )


def retry_after_seconds(error: BaseException) -> float | None:
    """The seconds the provider asked to wait before the next attempt, if it said (`None` otherwise).

    pydantic-ai 2.x reads it into `ModelAPIError.retry_after` (from the `retry-after-ms` or `Retry-After` header, or
    Google's `RetryInfo`). pydantic-ai 1.107's `ModelHTTPError` keeps neither the value nor the headers, but the
    provider SDK's exception it was raised from (its `__cause__`, e.g. `openai.RateLimitError`) holds the HTTP
    response, whose headers are read here the same way.

    Args:
        error: What the model request raised.

    Returns:
        Seconds (0 or more), or `None`.
    """
    seconds = model_error_retry_after(error)
    if seconds is not None:
        return max(0.0, seconds)
    headers = model_error_headers(error) or _cause_response_headers(error)
    return None if headers is None else _parse_retry_after(headers)


def _cause_response_headers(error: BaseException) -> Mapping[str, str] | None:
    cause = error.__cause__
    if cause is None:
        return None
    response = getattr(cause, 'response', None)
    headers = getattr(response, 'headers', None) if response is not None else getattr(cause, 'headers', None)
    if not isinstance(headers, Mapping):
        return None
    # httpx's `Headers` is case-insensitive already; a plain mapping may not be.
    return {str(key).lower(): str(value) for key, value in cast(Mapping[Any, Any], headers).items()}


def _parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """`retry-after-ms` (milliseconds, OpenAI and Anthropic), else `Retry-After` (seconds or an HTTP date)."""
    lowered = {key.lower(): value for key, value in headers.items()}
    milliseconds = _non_negative_number(lowered.get('retry-after-ms'))
    if milliseconds is not None:
        return milliseconds / 1000
    raw = lowered.get('retry-after')
    if raw is None:
        return None
    seconds = _non_negative_number(raw)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an asctime date carries no zone: HTTP dates are UTC
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _non_negative_number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if 0 <= value < float('inf') else None
