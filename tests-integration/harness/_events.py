"""Events seen by the scenarios' event stream handler, recorded in the process that runs the handler.

The handler runs in the test process on every engine here: Temporal activities run in the in-process worker,
DBOS steps and Prefect tasks in the process that started the run.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterable
from typing import Any

from pydantic_ai import RunContext
from pydantic_ai.messages import AgentStreamEvent

_lock = threading.Lock()
_events: list[AgentStreamEvent] = []


async def record_events(ctx: RunContext[Any], events: AsyncIterable[AgentStreamEvent]) -> None:
    """An `EventStreamHandler` that appends every event it receives to the recording."""
    async for event in events:
        with _lock:
            _events.append(event)


def take_events() -> list[AgentStreamEvent]:
    """The events recorded since the last call (the recording is emptied)."""
    with _lock:
        taken = list(_events)
        _events.clear()
    return taken
