"""Secrets passed the documented way never reach Prefect's database or result storage.

Issue 15. Prefect records flow and task runs in its database, persists every task's result (model responses, tool
outcomes) under its local storage path, and keys them by a hash over the task's inputs, deps included. Each test dumps
what Prefect stored (the database file and every cell of every table, base64 cells decoded; every file under
`PREFECT_HOME`, result storage included) and searches it for the secret.
"""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
from prefect import flow
from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from durable_prefect import DepsResolver, PrefectAgent

pytestmark = [pytest.mark.anyio]

WORKER_SECRETS: dict[str, str] = {}
"""The worker's secret store, by tenant. Every test uses its own secret: the tests share one Prefect server."""


def new_secret(tenant: str) -> str:
    secret = f'sk-live-{uuid.uuid4().hex}'
    WORKER_SECRETS[tenant] = secret
    return secret


RESOLVED: list[str] = []


class ApiClient:
    def __init__(self, api_key: str) -> None:
        self.api_key = api_key

    def authorized(self) -> bool:
        return self.api_key in WORKER_SECRETS.values()


@dataclass
class TenantDeps:
    tenant: str
    client: ApiClient


def resolve_tenant(tenant: str) -> TenantDeps:
    RESOLVED.append(tenant)
    return TenantDeps(tenant, ApiClient(WORKER_SECRETS[tenant]))


RESOLVER = DepsResolver[TenantDeps, str](reference=lambda deps: deps.tenant, resolve=resolve_tenant)


def call_then_answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    returns = [part for message in messages for part in message.parts if isinstance(part, ToolReturnPart)]
    if not returns:
        return ModelResponse(parts=[ToolCallPart('check_access', {})])
    return ModelResponse(parts=[TextPart(f'access: {returns[0].content}')])


def make_agent(
    name: str, *, resolver: DepsResolver[TenantDeps, str] | None, leak: bool = False
) -> PrefectAgent[TenantDeps, str]:
    agent = Agent(FunctionModel(call_then_answer), name=name, deps_type=TenantDeps)

    @agent.tool
    def check_access(ctx: RunContext[TenantDeps]) -> str:
        # A task: it sees the live client. `leak` makes the tool return the key (stored as the task's result).
        suffix = f' key={ctx.deps.client.api_key}' if leak else ''
        return f'{ctx.deps.tenant} authorized={ctx.deps.client.authorized()}{suffix}'

    return PrefectAgent(agent, deps_resolver=resolver)


def _database() -> Path:
    return Path(PREFECT_API_DATABASE_CONNECTION_URL.value().split(':///', 1)[-1])


def _holds_secret(data: bytes, secret: bytes) -> bool:
    """Whether `data` holds `secret`: as is, base64-encoded (Prefect's pickled results), or in a JSON string of it."""
    if secret in data:
        return True
    try:
        if secret in base64.b64decode(data):
            return True
    except binascii.Error:
        pass
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return False
    return any(_holds_secret(text.encode(), secret) for text in _json_strings(document))


def _json_strings(document: object) -> Iterator[str]:
    if isinstance(document, str):
        yield document
    elif isinstance(document, dict):
        for value in cast('dict[str, object]', document).values():
            yield from _json_strings(value)
    elif isinstance(document, list):
        for value in cast('list[object]', document):
            yield from _json_strings(value)


def secret_in_prefect_storage(home: Path, secret: str) -> bool:
    """Whether `secret` is in any file Prefect wrote (its database, result storage) or any cell of its database."""
    database = _database()
    assert database.is_file(), database
    files = [file for file in home.rglob('*') if file.is_file()]
    assert any(file.parent.name == 'storage' for file in files), 'no result was persisted'
    for file in [*files, *database.parent.glob(f'{database.name}*')]:
        if _holds_secret(file.read_bytes(), secret.encode()):
            return True
    with sqlite3.connect(database) as connection:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert 'task_run' in tables
        for table in tables:
            for row in connection.execute(f'SELECT * FROM "{table}"'):  # names from sqlite_master
                for cell in row:
                    if cell is not None and _holds_secret(
                        cell if isinstance(cell, bytes) else str(cell).encode(), secret.encode()
                    ):
                        return True
    return False


async def test_resolved_deps_keep_the_secret_out_of_prefect(prefect_server: Path) -> None:
    secret = new_secret('resolved')
    prefect_agent = make_agent('secret_resolved', resolver=RESOLVER)
    RESOLVED.clear()

    result = await prefect_agent.run('may I?', deps=resolve_tenant('resolved'))

    assert result.output == 'access: resolved authorized=True'
    # Resolved by the caller, then again by the flow from the reference; its tasks saw the live client.
    assert RESOLVED == ['resolved', 'resolved']
    assert not secret_in_prefect_storage(prefect_server, secret)


async def test_a_secret_that_a_task_returns_is_found_in_result_storage(prefect_server: Path) -> None:
    """The counter-test: the dump finds a secret Prefect did store (a tool result), so the check above can fail."""
    secret = new_secret('returned')
    prefect_agent = make_agent('secret_returned', resolver=RESOLVER, leak=True)

    result = await prefect_agent.run('may I?', deps=resolve_tenant('returned'))

    assert secret in result.output
    assert secret_in_prefect_storage(prefect_server, secret)


async def test_naive_deps_do_not_reach_prefect_storage_either(prefect_server: Path) -> None:
    """Measured: Prefect's runs of a `PrefectAgent` store no deps (the flow takes none; keys are hashes)."""
    secret = new_secret('naive')
    prefect_agent = make_agent('secret_naive', resolver=None)

    result = await prefect_agent.run('may I?', deps=TenantDeps('naive', ApiClient(secret)))

    assert result.output == 'access: naive authorized=True'
    assert not secret_in_prefect_storage(prefect_server, secret)


async def test_cache_keys_see_the_reference_not_the_credential() -> None:
    """Two runs of the same work in one flow, the credential rotated in between: the second finds the first's tasks.

    Keyed by the live deps, the new key would give the same work another key (a resumed run would repeat it) and put
    the credential into the hashed material; keyed by the reference (the tenant), it is the same work.
    """
    calls: list[str] = []
    agent = Agent(FunctionModel(call_then_answer), name='secret_keyed_by_reference', deps_type=TenantDeps)

    @agent.tool
    def check_access(ctx: RunContext[TenantDeps]) -> str:
        calls.append(ctx.deps.client.api_key)
        return f'{ctx.deps.tenant} authorized={ctx.deps.client.authorized()}'

    prefect_agent = PrefectAgent(agent, deps_resolver=RESOLVER)

    @flow
    async def rotated() -> list[str]:
        outputs: list[str] = []
        for _ in range(2):
            new_secret('rotated')  # the worker's credential for this tenant changes between the runs
            async with prefect_agent.iter('may I?', deps=resolve_tenant('rotated')) as agent_run:
                async for _node in agent_run:
                    pass
            assert agent_run.result is not None
            outputs.append(agent_run.result.output)
        return outputs

    assert await rotated() == ['access: rotated authorized=True'] * 2
    assert len(calls) == 1, calls
