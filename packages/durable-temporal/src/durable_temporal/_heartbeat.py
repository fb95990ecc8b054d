"""Activities heartbeat while they run, so that a dead worker's model request or tool call is retried after seconds.

A model request can take minutes (a long answer streamed token by token, a reasoning model thinking before its first
token). Without heartbeats, Temporal learns that the worker running it died only when the activity's start-to-close
timeout expires, and a short timeout would cut off healthy long requests. With a `heartbeat_timeout` in the model
activity config (`model_activity_config=ActivityConfig(heartbeat_timeout=timedelta(seconds=10))`), the activity
heartbeats three times per timeout for as long as the request runs, and Temporal retries it on another worker within
that timeout of the worker's death. Without a heartbeat timeout nothing is sent.

The heartbeats come from a timer in the activity's event loop, not from the tokens: a request that is still waiting
for its first token is alive too. A worker whose event loop is blocked for longer than the timeout looks dead (and its
request is retried): keep the timeout well above the longest blocking call your worker makes.

Tool activities (function tools, dynamic toolsets, MCP servers) and event-handler activities heartbeat the same way
when their config has a `heartbeat_timeout`: without it, a tool that runs longer than the timeout it was given was
failed by the server although its worker was alive. Only the capability form's model activities get a heartbeat
timeout by default; a CPU-bound tool can hold the event loop and starve the beats, so tools get none unless asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import ParamSpec, TypeVar

from temporalio import activity

__all__ = ('heartbeating', 'heartbeating_activity')

P = ParamSpec('P')
R = TypeVar('R')

_MIN_INTERVAL = 0.05


@asynccontextmanager
async def heartbeating() -> AsyncGenerator[None]:
    """Heartbeat every third of the activity's heartbeat timeout while the block runs (nothing without a timeout)."""
    timeout = activity.info().heartbeat_timeout
    if not timeout:
        yield
        return
    interval = max(timeout.total_seconds() / 3, _MIN_INTERVAL)

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(interval)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def heartbeating_activity(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """`fn` (an activity function, before `@activity.defn`) run under `heartbeating()`: it beats while it runs.

    The signature and annotations are `fn`'s, so that Temporal decodes the arguments as before.
    """

    @functools.wraps(fn)
    async def beating(*args: P.args, **kwargs: P.kwargs) -> R:
        async with heartbeating():
            return await fn(*args, **kwargs)

    return beating
