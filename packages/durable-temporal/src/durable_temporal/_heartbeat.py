"""Model activities heartbeat while their request runs, so that a dead worker's request is retried after seconds.

A model request can take minutes (a long answer streamed token by token, a reasoning model thinking before its first
token). Without heartbeats, Temporal learns that the worker running it died only when the activity's start-to-close
timeout expires, and a short timeout would cut off healthy long requests. With a `heartbeat_timeout` in the model
activity config (`model_activity_config=ActivityConfig(heartbeat_timeout=timedelta(seconds=10))`), the activity
heartbeats three times per timeout for as long as the request runs, and Temporal retries it on another worker within
that timeout of the worker's death. Without a heartbeat timeout nothing is sent.

The heartbeats come from a timer in the activity's event loop, not from the tokens: a request that is still waiting
for its first token is alive too. A worker whose event loop is blocked for longer than the timeout looks dead (and its
request is retried): keep the timeout well above the longest blocking call your worker makes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from temporalio import activity

__all__ = ('heartbeating',)

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
