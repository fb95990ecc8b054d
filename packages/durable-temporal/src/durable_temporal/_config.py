"""Temporal activity configs: the base default, the layering without mutation, and regular or local activities.

Configs layer agent, model, toolset and tool without changing the caller's dicts; each unit then runs as a regular or
a local activity under the same name (`local_activities=`, `LocalActivity`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, cast

from pydantic.errors import PydanticUserError
from pydantic_ai.exceptions import UserError
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityConfig, LocalActivityConfig

from durable_kernel import merge_config, merge_unique

__all__ = (
    'DEFAULT_START_TO_CLOSE_TIMEOUT',
    'NON_RETRYABLE_ERROR_TYPES',
    'LocalActivities',
    'LocalActivity',
    'LocalScope',
    'ToolActivityConfig',
    'ToolSetting',
    'check_local_streaming',
    'execute_unit',
    'local_activity_config',
    'local_scope',
    'merge_activity_config',
)

DEFAULT_START_TO_CLOSE_TIMEOUT = timedelta(seconds=60)
"""The start-to-close timeout used when no layer sets a start-to-close or schedule-to-close timeout."""

NON_RETRYABLE_ERROR_TYPES: tuple[str, ...] = (UserError.__name__, PydanticUserError.__name__)
"""Errors that retrying cannot fix (a misconfiguration): every activity's retry policy lists them as non-retryable."""


@dataclass(frozen=True)
class LocalActivity:
    """In `tool_activity_config`: run this tool's calls as a local activity, under the same activity name.

    `TemporalAgent(..., tool_activity_config={'<agent>': {'lookup': LocalActivity()}})`. The toolset's activity config
    applies, with `config` merged on top; the keys a local activity has no use for (`heartbeat_timeout`, `versioning_intent`, `priority`) are
    dropped, and a `task_queue` is refused.
    """

    config: LocalActivityConfig | None = None
    """Merged on top of the toolset's config, e.g. `{'local_retry_threshold': timedelta(seconds=5)}`."""


ToolActivityConfig = ActivityConfig | Literal[False]
"""The config of one tool's activity, or `False` to run the (async) tool in workflow code (what a toolset wrapper is
given: a `LocalActivity` reaches it as its config, the tool then being in `ActivityToolset.local_tools`)."""

ToolSetting = ActivityConfig | LocalActivity | Literal[False]
"""What `tool_activity_config` takes per tool: a config, `LocalActivity(...)` for a local activity, or `False`."""

LocalActivities = bool | Literal['model', 'tools']
"""Which of an agent's units run as local activities: `'model'` the model requests, `'tools'` the toolsets' activities
(tool calls, dynamic and MCP listings), `True` both, `False` none."""

_DROPPED_FOR_LOCAL = frozenset({'heartbeat_timeout', 'versioning_intent', 'priority'})
"""`ActivityConfig` keys a local activity has no use for: it never heartbeats and runs on the workflow's worker."""


@dataclass(frozen=True)
class LocalScope:
    """Which units of one agent run as local activities (resolved from `local_activities=`)."""

    model: bool = False
    tools: bool = False
    events: bool = False


def local_scope(local_activities: LocalActivities) -> LocalScope:
    """Resolve a `local_activities=` argument.

    Raises:
        UserError: The value is none of `True`, `False`, `'model'`, `'tools'`.
    """
    if local_activities is True:
        return LocalScope(model=True, tools=True, events=True)
    if local_activities is False:
        return LocalScope()
    if local_activities == 'model':
        return LocalScope(model=True)
    if local_activities == 'tools':
        return LocalScope(tools=True)
    raise UserError(
        f'`local_activities` must be `True`, `False`, `"model"` or `"tools"`, not {local_activities!r}.'  # pyright: ignore[reportUnreachable]
    )


def check_local_streaming(scope: LocalScope, *, event_stream_handler: object, event_stream_topic: object) -> None:
    """Refuse local model requests for an agent whose model requests are streamed (a handler or a topic).

    Raises:
        UserError: The model requests are local and would be streamed.
    """
    if not scope.model or (event_stream_handler is None and event_stream_topic is None):
        return
    given = '`event_stream_handler`' if event_stream_handler is not None else '`event_stream_topic`'
    raise UserError(
        f'Model requests cannot run as local activities with an {given}: the agent then streams its model requests, '
        'and a streamed request needs what only a regular activity has (heartbeats that let Temporal retry a dead '
        "worker's request, and live events published while the workflow task is not held). Use "
        '`local_activities="tools"` to keep the model requests regular, or drop the handler and topic.'
    )


def local_activity_config(config: Mapping[str, Any]) -> LocalActivityConfig:
    """The local-activity form of a merged activity config.

    `heartbeat_timeout`, `versioning_intent` and `priority` are dropped (a local activity does not heartbeat and runs
    on the worker of its workflow task).

    Raises:
        UserError: The config names a `task_queue`: a local activity runs on the workflow's own worker.
    """
    if config.get('task_queue') is not None:
        raise UserError(
            f'An activity config with `task_queue={config["task_queue"]!r}` cannot run as a local activity: a local '
            'activity runs on the worker of its workflow task. Keep this unit a regular activity (leave it out of '
            '`local_activities`), or drop the `task_queue`.'
        )
    return cast(
        LocalActivityConfig, {k: v for k, v in config.items() if k not in _DROPPED_FOR_LOCAL and k != 'task_queue'}
    )


async def execute_unit(
    activity_fn: Callable[..., Any], args: Sequence[Any], config: Mapping[str, Any], *, local: bool
) -> Any:
    """Run one durable unit from workflow code: a regular activity, or a local one under the same name and config.

    Args:
        activity_fn: The `@activity.defn` callable (registered on the worker either way).
        args: Its arguments.
        config: The merged activity config (with a summary).
        local: Whether to run it as a local activity.
    """
    if local:
        return await workflow.execute_local_activity(activity_fn, args=args, **local_activity_config(config))
    return await workflow.execute_activity(activity_fn, args=args, **cast(ActivityConfig, config))


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
