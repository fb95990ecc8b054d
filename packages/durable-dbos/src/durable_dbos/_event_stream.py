"""The agent's event stream stays in workflow code; the event stream handler is called once per event.

pydantic-ai runs a node's tool calls while the event stream handler reads the node's stream. A handler decorated with
`@DBOS.step()` (pydantic-ai's own DBOS examples do so, because a handler does I/O) would read the whole stream inside
its step, so the tool calls would run there too: outside workflow code, where tool and MCP calls are plain calls and
record nothing, and a recovered or forked workflow would meet a different step sequence (`DBOSUnexpectedStepError`).

So in workflow code the stream is read here, in the workflow, and each event is handed to the handler in a stream of
its own. A step handler records one step per event, under its own name, as with `pydantic_ai.durable_exec.dbos` (so
its workflows and ours have the same steps); a plain handler runs as workflow code, as before. The live events of a
streamed model request reach the handler inside the model-request step, not here.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from pydantic_ai.agent import EventStreamHandler
from pydantic_ai.messages import AgentStreamEvent
from pydantic_ai.tools import RunContext

from durable_kernel import EventStreamTopic

from ._live_events import publishing_stream

__all__ = ('handle_each_event', 'single_event_stream')


def handle_each_event(
    handler: EventStreamHandler[Any] | None, topic: EventStreamTopic | None = None
) -> EventStreamHandler[Any]:
    """A handler that reads the stream in the caller (workflow code) and calls `handler` once per event.

    With a topic, each event is published (a checkpointed stream write) before the handler gets it.
    """

    async def handle_events(ctx: RunContext[Any], stream: AsyncIterable[AgentStreamEvent]) -> None:
        if topic is not None:
            stream = publishing_stream(topic, stream)
        async for event in stream:
            if handler is not None:
                await handler(ctx, single_event_stream(event))

    return handle_events


async def single_event_stream(event: AgentStreamEvent) -> AsyncIterator[AgentStreamEvent]:
    """A stream of one event, as the handler receives each event dispatched on its own."""
    yield event
