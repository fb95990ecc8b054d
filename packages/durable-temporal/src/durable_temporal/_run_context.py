"""The run context that crosses into Temporal activities."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic_ai.tools import RunContext
from typing_extensions import Self, TypeVar

from durable_kernel import PartialRunContext, guard_rebuilt_run_context, rebuild_run_context

from ._deps_refs import deps_in_activity

if TYPE_CHECKING:
    from pydantic_ai.agent import AbstractAgent

__all__ = ('TemporalRunContext', 'activity_run_context')

AgentDepsT = TypeVar('AgentDepsT', default=None, covariant=True)


class TemporalRunContext(PartialRunContext[AgentDepsT]):
    """The [`RunContext`][pydantic_ai.tools.RunContext] an activity sees: the fields that crossed the boundary.

    By default `deps`, `run_id`, `metadata`, `retries`, `tool_call_id`, `tool_name`, `tool_call_approved`,
    `tool_call_metadata`, `retry`, `max_retries`, `run_step`, `usage`, `partial_output`, `loaded_capability_ids`,
    `discovered_tool_names`, `capability_loaded` (`capability_active` on pydantic-ai 2.x), `conversation_id`,
    `trace_include_content` and `instrumentation_version` (and, on pydantic-ai 2.x, `usage_limits`) are available, and
    `agent` is re-attached inside the activity. Sets and usage arrive as the objects they were.
    The `capabilities` registry and the tool manager stay behind (they hold live objects; `tool_manager` reads as
    `None`), so `available_tool_names` and the active capability ids (`available_capability_ids`,
    `active_capability_ids` from pydantic-ai 2.68) are sent as the workflow computed them at dispatch
    ([`AVAILABILITY_SNAPSHOTS`][durable_kernel.AVAILABILITY_SNAPSHOTS]): `is_tool_available` answers from them.

    Reading another `RunContext` attribute raises a [`UserError`][pydantic_ai.exceptions.UserError]. To make one
    available, subclass this class, override
    [`serialize_run_context`][durable_temporal.TemporalRunContext.serialize_run_context] to include it, and pass the
    subclass to [`TemporalAgent(run_context_type=...)`][durable_temporal.TemporalAgent].
    """

    unavailable_field_hint: ClassVar[str] = (
        'To make the attribute available, create a `TemporalRunContext` subclass with a custom '
        '`serialize_run_context` class method that returns a dictionary that includes the attribute, and pass it to '
        '`TemporalAgent(run_context_type=...)`.'
    )

    @classmethod
    def serialize_run_context(cls, ctx: RunContext[Any]) -> dict[str, Any]:
        """Serialize the run context to a `dict[str, Any]` holding the fields an activity may read.

        Args:
            ctx: The live run context in workflow code.

        Returns:
            The fields to send to the activity (`deps` is sent separately).
        """
        return super().serialize_run_context(ctx)

    @classmethod
    def deserialize_run_context(cls, ctx: dict[str, Any], deps: Any) -> Self:
        """Deserialize the run context from a `dict[str, Any]` made by `serialize_run_context`.

        Args:
            ctx: The serialized fields.
            deps: The run's dependencies.

        Returns:
            The run context the activity's code sees.
        """
        return super().deserialize_run_context(ctx, deps)


def activity_run_context(
    context_type: type[TemporalRunContext[Any]],
    data: Any,
    *,
    deps: Any,
    agent: AbstractAgent[Any, Any] | None,
) -> RunContext[Any]:
    """Rebuild the run context inside an activity from its payload and re-attach the agent.

    The payload converter decodes the serialized context as plain JSON data (sets as lists, dataclasses as dicts):
    [`PartialRunContext`][durable_kernel.PartialRunContext] rebuilds those fields.
    """
    fields: dict[str, Any] = dict(data) if isinstance(data, Mapping) else {}  # pyright: ignore[reportUnknownArgumentType]
    ctx = rebuild_run_context(context_type, fields, deps=deps, agent=agent)
    # An activity's result is what a replayed workflow gets back: a message enqueued inside it would be lost.
    return guard_rebuilt_run_context(ctx, unit='activity', container='workflow')


async def resolve_activity_context(
    context_type: type[TemporalRunContext[Any]],
    data: Any,
    *,
    deps: Any,
    deps_type: Any,
    agent: AbstractAgent[Any, Any] | None,
) -> RunContext[Any]:
    """`activity_run_context`, with deps that an earlier activity of the workflow carried fetched first."""
    data, deps = await deps_in_activity(data, deps, deps_type)
    return activity_run_context(context_type, data, deps=deps, agent=agent)
