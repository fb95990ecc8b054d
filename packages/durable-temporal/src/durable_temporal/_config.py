"""Temporal activity configs: the base default, and the layering (agent, model, toolset, tool) without mutation."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal, cast

from pydantic.errors import PydanticUserError
from pydantic_ai.exceptions import UserError
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityConfig

from durable_kernel import merge_config, merge_unique

__all__ = (
    'DEFAULT_START_TO_CLOSE_TIMEOUT',
    'NON_RETRYABLE_ERROR_TYPES',
    'ToolActivityConfig',
    'merge_activity_config',
)

DEFAULT_START_TO_CLOSE_TIMEOUT = timedelta(seconds=60)
"""The start-to-close timeout used when no layer sets a start-to-close or schedule-to-close timeout."""

NON_RETRYABLE_ERROR_TYPES: tuple[str, ...] = (UserError.__name__, PydanticUserError.__name__)
"""Errors that retrying cannot fix (a misconfiguration): every activity's retry policy lists them as non-retryable."""

ToolActivityConfig = ActivityConfig | Literal[False]
"""The config of one tool's activity, or `False` to run the (async) tool in workflow code."""


def merge_activity_config(*layers: Mapping[str, Any] | None) -> ActivityConfig:
    """Merge activity configs from the most general to the most specific layer.

    The result is a new dict whose retry policy is a new object: the callers' dicts and `RetryPolicy` objects are
    never changed. Whatever retry policy wins, `UserError` and `PydanticUserError` stay non-retryable, and a
    start-to-close timeout of 60 s is set when no layer gives a start-to-close or schedule-to-close timeout.

    Args:
        *layers: Activity configs (or `None`), later ones winning key by key.

    Returns:
        The merged config.
    """
    merged = merge_config(*layers)
    if merged.get('start_to_close_timeout') is None and merged.get('schedule_to_close_timeout') is None:
        merged['start_to_close_timeout'] = DEFAULT_START_TO_CLOSE_TIMEOUT
    policy = cast(RetryPolicy | None, merged.get('retry_policy')) or RetryPolicy()
    merged['retry_policy'] = dataclasses.replace(
        policy,
        non_retryable_error_types=merge_unique(policy.non_retryable_error_types, NON_RETRYABLE_ERROR_TYPES),
    )
    return cast(ActivityConfig, merged)
