"""Prefect task options for the tasks a durable agent creates, and how layers of them combine."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeAlias, cast

from prefect.cache_policies import CachePolicy
from prefect.client.schemas.objects import State, TaskRun
from prefect.results import ResultStorage
from prefect.tasks import Task
from typing_extensions import TypedDict

from durable_kernel import merge_config

from ._cache_policy import DEFAULT_CACHE_POLICY

__all__ = ('DEFAULT_TASK_CONFIG', 'TaskConfig', 'merge_task_config', 'with_model_error_retry_condition')

# Spelled out rather than imported: `prefect.tasks.RetryConditionCallable` does not exist in Prefect 3.4.3, our lowest.
RetryConditionCallable: TypeAlias = Callable[[Task[..., Any], TaskRun, State], Awaitable[bool] | bool]


class TaskConfig(TypedDict, total=False):
    """Options for one kind of Prefect task (model request, tool call, MCP call, event handling).

    They are passed to Prefect's `@task`. Any key left out keeps the value of the layer below it (see
    [`DEFAULT_TASK_CONFIG`][durable_prefect.DEFAULT_TASK_CONFIG]).
    """

    retries: int
    """How many times Prefect retries the task after it fails."""

    retry_delay_seconds: float | list[float]
    """Seconds to wait before a retry: one value, or one value per retry for a custom backoff."""

    retry_condition_fn: RetryConditionCallable
    """Decides whether a failed task is retried: called with the task, the task run and its failed state."""

    timeout_seconds: float
    """Seconds after which the task fails with a timeout."""

    cache_policy: CachePolicy
    """How the task's cache key is computed; see [`DEFAULT_CACHE_POLICY`][durable_prefect.DEFAULT_CACHE_POLICY]."""

    persist_result: bool
    """Whether the task's result is persisted (required for a retried or resumed flow run to reuse it)."""

    result_storage: ResultStorage
    """Where results are persisted: a storage block, or a block slug like `s3-bucket/my-storage`."""

    log_prints: bool
    """Whether `print` calls inside the task are sent to Prefect's logs."""


DEFAULT_TASK_CONFIG: TaskConfig = TaskConfig(
    retries=0,
    retry_delay_seconds=1.0,
    persist_result=True,
    log_prints=False,
    cache_policy=DEFAULT_CACHE_POLICY,
)
"""The base layer under every task config: no retries, persisted results, and a cache key by value."""


def merge_task_config(*configs: Mapping[str, Any] | None) -> TaskConfig:
    """Combine task configs, later layers winning key by key, on top of the defaults; inputs are never mutated.

    Args:
        *configs: The layers, from the most general to the most specific (`None` entries are skipped).

    Returns:
        A new task config.
    """
    return cast(TaskConfig, merge_config(DEFAULT_TASK_CONFIG, *configs))


def with_model_error_retry_condition(
    config: TaskConfig, is_non_retryable: Callable[[BaseException], bool]
) -> TaskConfig:
    """`config` with a `retry_condition_fn` that refuses to retry a model error `is_non_retryable` says cannot succeed.

    Any other failure is left to the config's own `retry_condition_fn`, if it has one (else retried). `config` is
    not modified.

    Args:
        config: A model task config.
        is_non_retryable: The kernel's `non_retryable_model_errors` rule.

    Returns:
        A new task config.
    """
    configured = config.get('retry_condition_fn')

    def retry_condition(task: Task[..., Any], task_run: TaskRun, state: State) -> Awaitable[bool] | bool:
        # Prefect hands the condition a `Failed` state whose data is the exception the task raised.
        error = state.data
        if isinstance(error, BaseException) and is_non_retryable(error):
            return False
        return True if configured is None else configured(task, task_run, state)

    return cast(TaskConfig, {**config, 'retry_condition_fn': retry_condition})
