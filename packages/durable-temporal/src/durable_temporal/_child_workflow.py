"""Function tools run as Temporal child workflows, selected by `metadata={'temporal': {'child_workflow': ...}}`.

pydantic-ai 2.68 lets an async function tool run as a child workflow instead of an activity: its body then is
workflow code, so it may itself start activities, timers or other agents' runs, each recorded in the child's own
history, and the parent's history holds one child-workflow call instead of every step. The names are persisted
compatibility data and are pydantic-ai 2.78's: the child workflow type is the call-tool activity's name with
`__child_workflow` appended, its default id `{parent workflow id}--{workflow.uuid4()}`, and its arguments are the
call-tool activity's (`CallToolParams`, deps).

A child workflow type is a class the worker must register (activities are callables); each function toolset gets one,
but only toolsets with a tool that selects a child workflow when the worker is configured register theirs (so workers
of agents without the feature register what they did before). A child started without its type registered would wait
forever for a worker, so new executions check the registry of this process first.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast, get_type_hints

import typing_extensions
from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config
from pydantic.errors import PydanticUserError
from pydantic_ai.exceptions import UserError
from pydantic_ai.tools import ToolDefinition
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, TemporalError
from temporalio.workflow import ChildWorkflowConfig

from ._config import merge_activity_config

__all__ = (
    'child_workflow_config',
    'define_child_workflow',
    'mark_child_workflows_registered',
    'refuse_unregistered_child_workflow',
    'selects_child_workflow',
)

_CHILD_WORKFLOW_KEY = 'child_workflow'

_registered_names: set[str] = set()
"""The child workflow types a worker of this process was configured with (module level: `durable_temporal` passes
through the workflow sandbox, whose re-imported agents never see the worker being configured)."""


def selects_child_workflow(metadata: Mapping[str, Any] | None) -> bool:
    """Whether tool metadata selects a child workflow: `{'temporal': {'child_workflow': ...}}`."""
    setting = (metadata or {}).get('temporal')
    return isinstance(setting, Mapping) and _CHILD_WORKFLOW_KEY in setting


@functools.cache
def _child_workflow_config_adapter() -> TypeAdapter[ChildWorkflowConfig]:
    # temporalio's `ChildWorkflowConfig` with unknown keys forbidden, derived from its annotations so that keys added by
    # newer temporalio releases are accepted (as `_config._activity_config_adapter` does for `ActivityConfig`).
    fields = get_type_hints(ChildWorkflowConfig, include_extras=True)
    checked = typing_extensions.TypedDict(  # pyright: ignore[reportGeneralTypeIssues, reportArgumentType]
        'ChildWorkflowConfig', fields, total=ChildWorkflowConfig.__total__
    )
    config = ConfigDict(extra='forbid', arbitrary_types_allowed=True)
    return cast('TypeAdapter[ChildWorkflowConfig]', TypeAdapter(with_config(config)(checked)))


def child_workflow_config(tool_def: ToolDefinition, *, is_async: bool) -> ChildWorkflowConfig | None:
    """The child workflow config a tool's metadata selects, checked and coerced to temporalio's types; `None` if none.

    A mistake would otherwise surface only when workflow code starts the child, where the `TypeError` fails the
    workflow *task*, which Temporal retries forever. A retry policy, when given, keeps pydantic-ai's deterministic errors
    non-retryable, as an activity's does; without one Temporal does not retry a child workflow at all.

    Args:
        tool_def: The tool's definition.
        is_async: Whether the tool's function is async (only an async function can run as workflow code).

    Raises:
        UserError: `child_workflow` is not the only key, the config is not a valid `ChildWorkflowConfig`, or the tool
            is sync.
    """
    if not selects_child_workflow(tool_def.metadata):
        return None
    name = tool_def.name
    setting = cast(Mapping[str, Any], (tool_def.metadata or {})['temporal'])
    if set(setting) != {_CHILD_WORKFLOW_KEY}:
        raise UserError(
            f'Tool {name!r} has invalid Temporal metadata {dict(setting)!r}: with `child_workflow`, no other key may be '
            "given (the child's options go in its `ChildWorkflowConfig`; an activity config does not apply)."
        )
    raw = setting[_CHILD_WORKFLOW_KEY]
    try:
        config = _child_workflow_config_adapter().validate_python(
            dict(cast(Mapping[str, Any], raw)) if isinstance(raw, Mapping) else raw
        )
    except ValidationError as error:
        raise UserError(
            f"Invalid Temporal `ChildWorkflowConfig` in tool {name!r}'s metadata: {error}\nThe keys and types of "
            '`temporalio.workflow.ChildWorkflowConfig` are accepted.'
        ) from error
    if not is_async:
        raise UserError(
            f'Tool {name!r} selects a Temporal child workflow, but it is a sync function: its body would run as '
            'workflow code, where sync tools (run in threads) cannot. Make the tool function `async`.'
        )
    policy = config.get('retry_policy')
    if policy is not None:
        config['retry_policy'] = cast(RetryPolicy, merge_activity_config({'retry_policy': policy}).get('retry_policy'))
    return config


def define_child_workflow(
    name: str,
    run: Callable[..., Awaitable[Any]],
    annotations: dict[str, Any],
) -> type:
    """Define the child workflow type `name` whose run method calls `run(params, deps)`.

    The class is a global of this module under a name derived from `name`: a sandboxed worker imports a workflow's
    class by module and name.
    """
    class_name = f'_child_workflow_{name.encode().hex()}'

    async def run_method(self: object, params: Any, deps: Any = None) -> Any:
        if workflow.info().parent is None:
            raise ApplicationError(
                f'{name} runs a tool call of a pydantic-ai agent: it is started by the agent as a child workflow.',
                non_retryable=True,
            )
        try:
            return await run(params, deps)
        except TemporalError:
            raise
        except Exception as error:
            # Fail the child (its retry policy decides, by type name) and so the parent's tool call, as an activity's
            # error would; any other exception would fail the workflow *task*, which Temporal retries forever.
            raise ApplicationError(
                str(error), type=type(error).__name__, non_retryable=isinstance(error, (UserError, PydanticUserError))
            ) from error

    run_method.__name__ = 'run'
    run_method.__qualname__ = f'{class_name}.run'
    run_method.__annotations__ = dict(annotations)
    cls = type(class_name, (), {'run': workflow.run(run_method), '__module__': __name__})
    globals()[class_name] = cls
    return workflow.defn(name=name)(cls)


def mark_child_workflows_registered(workflows: list[type]) -> None:
    """Record that a worker of this process was configured with `workflows` (child workflow types)."""
    for cls in workflows:
        definition = workflow._Definition.must_from_class(cls)
        if definition.name is not None:
            _registered_names.add(definition.name)


def refuse_unregistered_child_workflow(name: str, toolset_id: str) -> None:
    """In workflow code, before starting the child workflow `name`: a `UserError` if no worker here registered it.

    A replay re-issues what the first execution did (which passed this check), possibly in a process whose workers
    were never configured (a `Replayer`), so only new executions are checked.
    """
    if workflow.unsafe.is_replaying() or name in _registered_names:
        return
    raise UserError(
        f'A tool of toolset {toolset_id!r} runs as the Temporal child workflow {name!r}, which no worker of this '
        'process registered: no tool of the toolset selected a child workflow when the worker was configured. Set the '
        "tool's `metadata={'temporal': {'child_workflow': ChildWorkflowConfig(...)}}` before creating the worker, "
        'and register the agent through `PydanticAIPlugin` (`__pydantic_ai_agents__`) or `AgentPlugin`, which register '
        'child workflows, not through `activities=agent.temporal_activities`.'
    )
