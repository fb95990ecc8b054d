"""Connect to a Temporal server: the one at `--address`, else a local dev server started for the example."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from temporalio.client import Client

from durable_temporal import PydanticAIPlugin

ADDRESS_HELP = 'a running Temporal server (host:port); default: start a local dev server for this example'


@asynccontextmanager
async def temporal_client(address: str | None) -> AsyncGenerator[Client]:
    """A client with the `PydanticAIPlugin` (pydantic payloads, sandbox passthrough, agent activities)."""
    if address:
        yield await Client.connect(address, plugins=[PydanticAIPlugin()])
        return
    from durable_temporal.testing import dev_server

    async with dev_server() as env:
        yield env.client
