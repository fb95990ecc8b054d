"""Agent events delivered to the user's event stream handler in Prefect tasks named `Handle Stream Event`."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from prefect import task
from pydantic_ai.agent import EventStreamHandler
from pydantic_ai.messages import AgentStreamEvent
from pydantic_ai.tools import RunContext

from durable_kernel import prefect_task_name

from ._cache_policy import KeyedTaskInput
from ._task_config import TaskConfig

__all__ = ('event_handler_in_tasks',)


class _EventInput(KeyedTaskInput):
    """One event: keyed by handler, run context, the event and its position in its stream."""

    __slots__ = ('ctx', 'event', 'handler', 'position')

    def __init__(self, handler: EventStreamHandler[Any], ctx: RunContext[Any], event: AgentStreamEvent, position: int):
        self.handler = handler
        self.ctx = ctx
        self.event = event
        self.position = position

    def cache_material(self) -> Any:
        return {'handler': self.handler, 'ctx': self.ctx, 'event': self.event, 'position': self.position}


async def _handle_event(item: _EventInput) -> None:
    async def single_event() -> AsyncIterator[AgentStreamEvent]:
        yield item.event

    await item.handler(item.ctx, single_event())


_EVENT_TASK = task(_handle_event)


def event_handler_in_tasks(handler: EventStreamHandler[Any], task_config: TaskConfig) -> EventStreamHandler[Any]:
    """Wrap an event stream handler so that each event is handled in its own `Handle Stream Event` task.

    A retried or resumed flow run does not deliver an event again once its task completed.

    Args:
        handler: The user's handler.
        task_config: The task config of the event tasks.

    Returns:
        A handler with the same signature.
    """
    event_task = _EVENT_TASK.with_options(name=prefect_task_name('handle_event'), **task_config)

    async def handle_in_tasks(ctx: RunContext[Any], stream: AsyncIterable[AgentStreamEvent]) -> None:
        position = 0
        async for event in stream:
            await event_task(_EventInput(handler, ctx, event, position))
            position += 1

    return handle_in_tasks
