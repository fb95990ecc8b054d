"""Agent events delivered to the user's event stream handler in Prefect tasks named `Handle Stream Event`."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any

from pydantic_ai.agent import EventStreamHandler
from pydantic_ai.messages import AgentStreamEvent
from pydantic_ai.tools import RunContext

from durable_kernel import forward_event_batches, prefect_task_name

from ._cache_policy import KeyedTaskInput
from ._canonical import key_by_name
from ._result_first import agent_task
from ._task_config import TaskConfig

__all__ = ('event_handler_in_tasks', 'event_task')


class _EventInput(KeyedTaskInput):
    """A batch of events: keyed by handler, run context, the events and the position of the first in its stream."""

    __slots__ = ('ctx', 'events', 'handler', 'position')

    def __init__(
        self, handler: EventStreamHandler[Any], ctx: RunContext[Any], events: list[AgentStreamEvent], position: int
    ):
        self.handler = handler
        self.ctx = ctx
        self.events = events
        self.position = position

    def cache_material(self) -> Any:
        return {'handler': key_by_name(self.handler), 'ctx': self.ctx, 'events': self.events, 'position': self.position}


async def _handle_event(item: _EventInput) -> None:
    async def batch() -> AsyncIterator[AgentStreamEvent]:
        for event in item.events:
            yield event

    await item.handler(item.ctx, batch())


_EVENT_TASK = agent_task(_handle_event, context='ctx')


def event_task(
    task_config: TaskConfig,
) -> Callable[[EventStreamHandler[Any], RunContext[Any], AgentStreamEvent, int], Awaitable[None]]:
    """A `Handle Stream Event` task for one event at a time, as the capability form (`PrefectDurability`) dispatches.

    The caller gives each event its position among the events the flow run dispatched (the capability: a per-flow
    sequence), which enters the cache key: two identical events both reach the handler, while a retried flow run,
    which dispatches the same events in the same order, finds each one's completed task again.

    Args:
        task_config: The task config of the event tasks.

    Returns:
        `send(handler, ctx, event, position)`.
    """
    task = _EVENT_TASK.with_options(name=prefect_task_name('handle_event'), **task_config)

    async def send(
        handler: EventStreamHandler[Any], ctx: RunContext[Any], event: AgentStreamEvent, position: int
    ) -> None:
        await task(_EventInput(handler, ctx, [event], position))

    return send


def event_handler_in_tasks(handler: EventStreamHandler[Any], task_config: TaskConfig) -> EventStreamHandler[Any]:
    """Wrap an event stream handler so that the events of a flow are handled in `Handle Stream Event` tasks.

    The events the agent yields together (the tool-call events of a model response, the results of its calls) are
    handled in one task, while the tool calls run (`durable_kernel.forward_event_batches`), instead of one task per
    event. A retried or resumed flow run does not deliver a batch again once its task completed.

    Args:
        handler: The user's handler.
        task_config: The task config of the event tasks.

    Returns:
        A handler with the same signature.
    """
    event_task = _EVENT_TASK.with_options(name=prefect_task_name('handle_event'), **task_config)

    async def handle_in_tasks(ctx: RunContext[Any], stream: AsyncIterable[AgentStreamEvent]) -> None:
        position = 0

        async def send(events: list[AgentStreamEvent]) -> None:
            nonlocal position
            first, position = position, position + len(events)
            await event_task(_EventInput(handler, ctx, events, first))

        await forward_event_batches(stream, send)

    return handle_in_tasks
