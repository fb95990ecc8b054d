"""Temporal activity configs: the base default, the layering without mutation, and regular or local activities.

Configs layer agent, model, toolset and tool without changing the caller's dicts; each unit then runs as a regular or
a local activity under the same name (`local_activities=`, `LocalActivity`).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, cast, get_type_hints

import typing_extensions
from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config
from pydantic.errors import PydanticUserError
from pydantic_ai.exceptions import FallbackExceptionGroup, UnexpectedModelBehavior, UserError
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityConfig, LocalActivityConfig

from durable_kernel import PYDANTIC_AI_2, merge_config, merge_unique

from ._cancellation import await_activity

__all__ = (
    'DEFAULT_START_TO_CLOSE_TIMEOUT',
    'NON_RETRYABLE_ERROR_TYPES',
    'PAYLOAD_TOO_LARGE_ERROR_TYPE',
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
    'ValidatedActivityConfigs',
    'validate_activity_config',
    'validated_activity_configs',
)

DEFAULT_START_TO_CLOSE_TIMEOUT = timedelta(seconds=60)
"""The start-to-close timeout used when no layer sets a start-to-close or schedule-to-close timeout."""


def _temporalio_version() -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in importlib.metadata.version('temporalio').split('.')[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):  # pragma: no cover - a source build
        return (0, 0)


PAYLOAD_SIZE_ERROR_TYPE = 'PayloadsTooLarge' if _temporalio_version() >= (1, 31) else 'PayloadSizeError'
"""The failure type temporalio gives an activity whose result is over the server's blob size limit.

temporalio 1.31 moved that check into its Rust core, which names the failure `PayloadsTooLarge`; up to 1.30 the Python
SDK raised a private error its failure converter named `PayloadSizeError`. Our own result check
(`PydanticAIPlugin(payload_size_limit=...)`) usually fails the activity first; this one is what is left when it is off
or set above the server's limit.
"""

PAYLOAD_TOO_LARGE_ERROR_TYPE = 'DurablePayloadTooLarge'
"""The `ApplicationError.type` of an activity whose result is over the limit (see `PayloadLimitInterceptor`)."""

_OVER_LIMIT_ERROR_TYPES = frozenset({PAYLOAD_TOO_LARGE_ERROR_TYPE, 'PayloadSizeError', 'PayloadsTooLarge'})

NON_RETRYABLE_ERROR_TYPES: tuple[str, ...] = (
    (
        UserError.__name__,
        PydanticUserError.__name__,
        UnexpectedModelBehavior.__name__,
        FallbackExceptionGroup.__name__,
        PAYLOAD_SIZE_ERROR_TYPE,
    )
    # pydantic-ai 2.x lists these in every retry policy, in this order: a model that keeps misbehaving, a fallback
    # chain whose models all failed and an over-limit result come back the same on every attempt, and each attempt
    # of a model request is paid for. On 1.107 the list stays the two errors its own wrappers record, so that the
    # activities scheduled stay the same as the ones 1.107's `pydantic_ai.durable_exec` schedules.
    if PYDANTIC_AI_2
    else (UserError.__name__, PydanticUserError.__name__)
)
"""Errors that retrying cannot fix: every activity's retry policy lists them as non-retryable."""


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


@contextmanager
def over_limit_results_fail_the_workflow() -> Generator[None]:
    """In workflow code: an activity whose result was over the payload size limit raises a `UserError` here.

    The activity failed with our `DurablePayloadTooLarge` (or temporalio's own over-limit failure), which says what
    was too large and what to do. Raised again as a `UserError` in workflow code, the workflow fails with an error of
    the type a misconfiguration gets (as in pydantic-ai 2.x), the activity's failure kept as its cause. Only the
    failure payload of the workflow changes, not its commands: replay-safe.
    """
    try:
        yield
    except ActivityError as error:
        cause = error.cause
        if not isinstance(cause, ApplicationError) or cause.type not in _OVER_LIMIT_ERROR_TYPES:
            raise
        message = cause.message
        if cause.type != PAYLOAD_TOO_LARGE_ERROR_TYPE:  # temporalio's own check: its message names no activity
            message = (
                f'The result of the activity {error.activity_type!r} is over the payload size limit of the Temporal '
                f'server: {message}'
            )
        raise UserError(message) from error


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
    with over_limit_results_fail_the_workflow():
        # Started, then awaited by `await_activity`: cancelling the caller (`asyncio.wait_for`, a cancelled workflow)
        # then ends as asyncio cancellation does, instead of livelocking or failing the workflow.
        if local:
            handle = workflow.start_local_activity(activity_fn, args=args, **local_activity_config(config))
        else:
            handle = workflow.start_activity(activity_fn, args=args, **cast(ActivityConfig, config))
        return await await_activity(handle)


@functools.cache
def _activity_config_adapter() -> TypeAdapter[ActivityConfig]:
    # A copy of temporalio's own `ActivityConfig` with unknown keys forbidden, derived from its annotations so that keys
    # added by newer temporalio releases are accepted. `typing_extensions.TypedDict`: pydantic needs it before 3.12.
    fields = get_type_hints(ActivityConfig, include_extras=True)
    checked = typing_extensions.TypedDict(  # pyright: ignore[reportGeneralTypeIssues, reportArgumentType]
        'ActivityConfig', fields, total=ActivityConfig.__total__
    )
    config = ConfigDict(extra='forbid', arbitrary_types_allowed=True)
    return cast('TypeAdapter[ActivityConfig]', TypeAdapter(with_config(config)(checked)))


def validate_activity_config(config: Mapping[str, Any] | None, source: str) -> ActivityConfig | None:
    """Check an activity config given by the user, and return it with its values coerced to temporalio's types.

    `ActivityConfig` is a `TypedDict`, so a misspelt key or a value of the wrong type passes unnoticed until workflow
    code hands the config to `workflow.execute_activity()`, where the `TypeError` fails the workflow *task*, which
    Temporal retries forever. Checked when the agent is made durable, the mistake fails there instead. Values that
    came back from JSON are coerced (`'PT5M'` becomes a `timedelta`, a dict a `RetryPolicy`); the caller's dict is not
    changed.

    Args:
        config: The config (or `None`, returned as is).
        source: Where it was given, for the error, e.g. ``"`model_activity_config`"``.

    Returns:
        A new dict with the coerced values, or `None`.

    Raises:
        UserError: A key temporalio does not know, or a value it cannot use.
    """
    if config is None:
        return None
    try:
        return _activity_config_adapter().validate_python(dict(config))
    except ValidationError as error:
        raise UserError(
            f'Invalid Temporal `ActivityConfig` in {source}: {error}\nThe keys and types of '
            '`temporalio.workflow.ActivityConfig` are accepted (a per-tool config goes in `tool_activity_config` or '
            "the tool's `metadata`, not in a toolset's config)."
        ) from error


@dataclass(frozen=True)
class ValidatedActivityConfigs:
    """The activity configs of one durable agent, checked and coerced (see `validated_activity_configs`)."""

    activity_config: ActivityConfig | None
    model_activity_config: ActivityConfig | None
    event_stream_handler_activity_config: ActivityConfig | None
    toolset_activity_config: dict[str, ActivityConfig]
    tool_activity_config: dict[str, dict[str, ToolSetting]]


def validated_activity_configs(
    *,
    activity_config: Mapping[str, Any] | None = None,
    model_activity_config: Mapping[str, Any] | None = None,
    event_stream_handler_activity_config: Mapping[str, Any] | None = None,
    toolset_activity_config: Mapping[str, Mapping[str, Any]] | None = None,
    tool_activity_config: Mapping[str, Mapping[str, ToolSetting]] | None = None,
) -> ValidatedActivityConfigs:
    """Check every activity config given to `TemporalAgent` or `TemporalDurability` (see `validate_activity_config`).

    Raises:
        UserError: One of them has a key temporalio does not know or a value it cannot use; the message names it.
    """
    tools: dict[str, dict[str, ToolSetting]] = {}
    for toolset_id, settings in (tool_activity_config or {}).items():
        tools[toolset_id] = {
            # `False` and `LocalActivity(...)` are not configs; a plain dict is checked like the others.
            tool: setting
            if setting is False or isinstance(setting, LocalActivity)
            else cast(
                ActivityConfig,
                validate_activity_config(setting, f'`tool_activity_config[{toolset_id!r}][{tool!r}]`'),
            )
            for tool, setting in settings.items()
        }
    return ValidatedActivityConfigs(
        activity_config=validate_activity_config(activity_config, '`activity_config`'),
        model_activity_config=validate_activity_config(model_activity_config, '`model_activity_config`'),
        event_stream_handler_activity_config=validate_activity_config(
            event_stream_handler_activity_config, '`event_stream_handler_activity_config`'
        ),
        toolset_activity_config={
            toolset_id: cast(
                ActivityConfig, validate_activity_config(config, f'`toolset_activity_config[{toolset_id!r}]`')
            )
            for toolset_id, config in (toolset_activity_config or {}).items()
        },
        tool_activity_config=tools,
    )


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
