"""Toolset wrappers that move tool calls (and MCP tool listing) into Prefect tasks."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prefect import Task
from pydantic_ai.tools import AgentDepsT, RunContext
from pydantic_ai.toolsets import AbstractToolset, ToolsetTool, WrapperToolset

from durable_kernel import ToolOutcome, capture_tool_outcome

from ._cache_policy import KeyedTaskInput
from ._reference_results import reference_tool_result
from ._result_first import agent_task
from ._task_config import TaskConfig, merge_task_config

__all__ = ('PrefectWrapperToolset', 'ToolCallInput', 'run_args_validation', 'run_tool_call')


class ToolCallInput(KeyedTaskInput):
    """A tool call's arguments: keyed by toolset, tool, arguments and run context (deps and metadata included)."""

    __slots__ = ('ctx', 'name', 'tool', 'tool_args', 'toolset')

    def __init__(
        self,
        toolset: AbstractToolset[Any],
        name: str,
        tool_args: dict[str, Any],
        ctx: RunContext[Any],
        tool: ToolsetTool[Any],
    ) -> None:
        self.toolset = toolset
        self.name = name
        self.tool_args = tool_args
        self.ctx = ctx
        self.tool = tool

    def cache_material(self) -> Any:
        return {
            'toolset': self.toolset,
            'name': self.name,
            'tool_args': self.tool_args,
            'ctx': self.ctx,
            'tool': self.tool,
        }


async def run_tool_call(call: ToolCallInput) -> ToolOutcome:
    """The body of a tool-call task: `ModelRetry`, `ApprovalRequired` and `CallDeferred` come back as data.

    Returning them (instead of raising) means a task retry never runs the tool body again for control flow.

    Args:
        call: The tool call.

    Returns:
        The tool's outcome.
    """
    return await capture_tool_outcome(call.toolset.call_tool(call.name, call.tool_args, call.ctx, call.tool))


async def _recorded_by_reference(call: ToolCallInput) -> ToolOutcome | None:
    return await reference_tool_result(call.name, call.tool_args, call.ctx, call.tool)


TOOL_CALL_TASK = agent_task(run_tool_call, context='ctx', recorded=_recorded_by_reference)
"""A tool call's task; in a re-run that left pydantic-ai's own agent run behind, it reuses that run's recorded result
for the same call (`_reference_results`)."""


async def run_args_validation(call: ToolCallInput) -> ToolOutcome:
    """The body of a `Validate Tool Args: {tool}` task: the tool's `args_validator` on the validated arguments.

    Its `ModelRetry`, `ApprovalRequired` or `CallDeferred` comes back as data, like a tool call's.

    Args:
        call: The validation, as a tool call (`tool` is the tool with its own validator).

    Returns:
        The outcome (`None` returned when the arguments pass).
    """

    async def validate() -> None:
        validator = call.tool.args_validator_func
        if validator is not None:
            result = validator(call.ctx, **call.tool_args)
            if inspect.isawaitable(result):
                await result

    return await capture_tool_outcome(validate())


ARGS_VALIDATION_TASK = agent_task(run_args_validation, context='ctx')
"""A task of its own (its source is part of its cache key, so a validation never answers for a call)."""


@dataclass
class PrefectWrapperToolset(WrapperToolset[AgentDepsT]):
    """Base class of the toolset wrappers that run a toolset's IO in Prefect tasks.

    A Prefect-wrapped toolset is a leaf: it is not visited again by `visit_and_replace`.
    """

    _tasks: dict[tuple[str, str], Task[..., Any]] = field(
        default_factory=dict[tuple[str, str], Task[..., Any]], init=False, repr=False, compare=False
    )

    @property
    def id(self) -> str | None:
        return self.wrapped.id

    def visit_and_replace(
        self, visitor: Callable[[AbstractToolset[AgentDepsT]], AbstractToolset[AgentDepsT]]
    ) -> AbstractToolset[AgentDepsT]:
        return self

    def _task(self, base: Task[..., Any], name: str, config: Mapping[str, Any]) -> Task[..., Any]:
        """The task `base` renamed to `name` with `config`, built once per name."""
        key = (base.name, name)
        found = self._tasks.get(key)
        if found is None:
            found = self._tasks[key] = base.with_options(name=name, **config)
        return found


def tool_task_config(name: str, task_config: TaskConfig, by_name: Mapping[str, TaskConfig | None]) -> TaskConfig | None:
    """The config for one tool's task: its own entry over the toolset's, or `None` if it runs without a task.

    Args:
        name: The tool's name.
        task_config: The config for every tool of the toolset.
        by_name: Per-tool configs; `None` means the tool runs without a task.

    Returns:
        The merged config, or `None`.
    """
    if name not in by_name:
        return task_config
    specific = by_name[name]
    return None if specific is None else merge_task_config(task_config, specific)
