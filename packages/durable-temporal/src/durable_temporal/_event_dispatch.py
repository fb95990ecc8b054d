"""How workflow code hands a node's events to the event-handler activity.

Shared by `TemporalAgent` and, for a workflow that `TemporalAgent` started, `TemporalDurability`.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from pydantic_ai import messages as pai_messages
from pydantic_ai.tools import RunContext

from durable_kernel import ordered_tool_call_events

from ._versioning import ORDERED_TOOL_EVENTS_PATCH

__all__ = ('is_model_request_stream', 'tool_event_order', 'with_first_event_pulled')


def is_model_request_stream(ctx: RunContext[Any]) -> bool:
    """Whether the handler is given a model request's events (the run's latest message is the request), not tools'."""
    return bool(ctx.messages) and isinstance(ctx.messages[-1], pai_messages.ModelRequest)


async def with_first_event_pulled(
    stream: AsyncIterable[pai_messages.AgentStreamEvent],
) -> AsyncIterable[pai_messages.AgentStreamEvent]:
    """`stream` with its first event (or its end) already awaited, and the same events to iterate."""
    events = aiter(stream)
    try:
        first = await anext(events)
    except StopAsyncIteration:
        return _no_events()

    async def replayed() -> AsyncIterator[pai_messages.AgentStreamEvent]:
        yield first
        async for event in events:
            yield event

    return replayed()


async def _no_events() -> AsyncIterator[pai_messages.AgentStreamEvent]:
    return
    yield


def tool_event_order(ctx: RunContext[Any], decide: Callable[[str], bool]) -> AbstractContextManager[None]:
    """Call order for the events of the latest model response's tool calls, if it has several and `decide` says so.

    `decide` is `patched` for the wrapper (new executions take the behaviour) and `recorded` for the capability form
    (only a history that took it).
    """
    last = ctx.messages[-1] if ctx.messages else None
    if not isinstance(last, pai_messages.ModelResponse) or len(last.tool_calls) < 2:
        return nullcontext()
    return ordered_tool_call_events() if decide(ORDERED_TOOL_EVENTS_PATCH) else nullcontext()
