from __future__ import annotations

import inspect
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from pydantic.errors import PydanticUserError
from pydantic_ai import exceptions
from pydantic_ai.exceptions import (
    ContentFilterError,
    FallbackExceptionGroup,
    ModelAPIError,
    ModelHTTPError,
    UnexpectedModelBehavior,
    UserError,
)

from durable_kernel import is_permanent_model_error, model_error_retry_predicate, retry_after_seconds


def http_error(status: int, headers: dict[str, str] | None = None) -> ModelHTTPError:
    """A `ModelHTTPError` raised as provider models raise it: from the SDK's error, which holds the HTTP response."""
    request = httpx.Request('POST', 'https://provider.test/v1/chat')
    try:
        try:
            raise httpx.HTTPStatusError('failed', request=request, response=httpx.Response(status, headers=headers))
        except httpx.HTTPStatusError as cause:
            raise ModelHTTPError(status, 'model', {'error': 'x'}) from cause
    except ModelHTTPError as error:
        return error


@pytest.mark.parametrize('status', [400, 401, 402, 403, 404, 413, 422])
def test_a_client_error_is_permanent(status: int) -> None:
    assert is_permanent_model_error(ModelHTTPError(status, 'model'))


@pytest.mark.parametrize('status', [408, 409, 429, 500, 502, 503, 504, 529])
def test_timeouts_conflicts_rate_limits_and_server_errors_are_retried(status: int) -> None:
    assert not is_permanent_model_error(ModelHTTPError(status, 'model'))


@pytest.mark.parametrize(
    'error',
    [UserError('misconfigured'), PydanticUserError('misconfigured', code=None), ContentFilterError('refused')],
)
def test_misconfiguration_and_refused_content_are_permanent(error: BaseException) -> None:
    assert is_permanent_model_error(error)


@pytest.mark.parametrize(
    'error',
    [ModelAPIError('model', 'connection reset'), UnexpectedModelBehavior('empty response'), RuntimeError('boom')],
)
def test_other_errors_are_retried(error: BaseException) -> None:
    assert not is_permanent_model_error(error)


def test_a_fallback_group_is_permanent_only_when_every_model_failed_permanently() -> None:
    permanent = FallbackExceptionGroup('all failed', [ModelHTTPError(401, 'a'), ModelHTTPError(400, 'b')])
    one_transient = FallbackExceptionGroup('all failed', [ModelHTTPError(401, 'a'), ModelHTTPError(503, 'b')])
    assert is_permanent_model_error(permanent)
    assert not is_permanent_model_error(one_transient)
    by_class = model_error_retry_predicate((ModelHTTPError,))
    assert by_class(one_transient)


def categorized(category: str | None, status: int) -> ModelHTTPError:
    """An HTTP error of a pydantic-ai 2.x category, as its provider models raise them (`None`: a plain one)."""
    if category is None:
        return ModelHTTPError(status, 'model')
    for_category: Any = getattr(ModelHTTPError, 'for_category')  # noqa: B009  (2.x only)
    return for_category(getattr(exceptions, category), status_code=status, model_name='model')


# pydantic-ai 2.x's categories decide over the status; 1.107 (and 2.x before them, e.g. 2.33) has none, so there the
# status is all there is.
_HAS_CATEGORIES = hasattr(ModelHTTPError, 'for_category')
CATEGORY_CASES: list[tuple[str | None, int, bool]] = (
    [
        ('ModelUnavailableError', 403, False),  # Bedrock's 403 that AWS says to retry
        ('ModelRateLimitError', 400, False),
        ('ModelQuotaExceededError', 429, True),
        ('ModelRequestRejectedError', 422, True),
        ('ModelAuthenticationError', 401, True),
    ]
    if _HAS_CATEGORIES
    else [(None, 403, True), (None, 400, True), (None, 429, False)]
)


@pytest.mark.parametrize(('category', 'status', 'permanent'), CATEGORY_CASES)
def test_categories_decide_over_the_status(category: str | None, status: int, permanent: bool) -> None:
    assert is_permanent_model_error(categorized(category, status)) is permanent


def test_classes_replace_the_rule_and_a_function_extends_it() -> None:
    only_auth = model_error_retry_predicate([ModelHTTPError])
    assert only_auth(ModelHTTPError(503, 'model'))
    assert not only_auth(UserError('misconfigured'))
    assert not model_error_retry_predicate(())(ModelHTTPError(400, 'model'))

    def also_timeouts(error: BaseException) -> bool:
        return is_permanent_model_error(error) or isinstance(error, TimeoutError)

    extended = model_error_retry_predicate(also_timeouts)
    assert extended(TimeoutError())
    assert extended(ModelHTTPError(400, 'model'))
    assert not extended(ModelHTTPError(503, 'model'))


@pytest.mark.parametrize('value', [ModelHTTPError, 'ModelHTTPError', [ModelHTTPError, 'x'], 3])
def test_anything_else_is_refused(value: Any) -> None:
    with pytest.raises(UserError, match=r'`non_retryable_model_errors` must be a sequence of exception classes'):
        model_error_retry_predicate(value)


def test_retry_after_is_read_from_the_providers_response_headers() -> None:
    assert retry_after_seconds(http_error(429, {'Retry-After': '7'})) == 7
    assert retry_after_seconds(http_error(429, {'retry-after-ms': '1500', 'retry-after': '7'})) == 1.5
    in_ten_seconds = datetime.now(timezone.utc) + timedelta(seconds=10)
    from_date = retry_after_seconds(http_error(503, {'Retry-After': format_datetime(in_ten_seconds, usegmt=True)}))
    assert from_date is not None
    assert 5 < from_date <= 10
    assert retry_after_seconds(http_error(429)) is None
    assert retry_after_seconds(http_error(429, {'Retry-After': 'soon'})) is None
    assert retry_after_seconds(http_error(429, {'Retry-After': '-3'})) is None
    assert retry_after_seconds(ModelHTTPError(429, 'model')) is None
    assert retry_after_seconds(RuntimeError('no response')) is None


@pytest.mark.parametrize('headers', [{'retry-after': '4'}, {'Retry-After-Ms': '4000'}])
def test_retry_after_from_the_errors_own_fields_where_the_line_has_them(headers: dict[str, str]) -> None:
    # pydantic-ai 2.x's `ModelHTTPError` carries the headers (and `retry_after`) itself; 1.107's takes neither.
    error_class: Any = ModelHTTPError
    carries_headers = 'headers' in inspect.signature(ModelHTTPError.__init__).parameters
    error = error_class(429, 'model', headers=headers) if carries_headers else error_class(429, 'model')
    assert retry_after_seconds(error) == (4 if carries_headers else None)
