"""Secrets passed the documented way never reach DBOS's system database; passed the naive way, they do.

Issue 15: DBOS pickles a workflow's inputs (`deps` included) into `workflow_status.inputs`, so a credential in the deps
sat in the system database. With a `DepsResolver` the workflow records a reference and rebuilds the live deps when it
runs and when it is re-executed. Each test dumps the SQLite system database: the file bytes, and every cell of every
table, base64 cells (DBOS's pickle serialization) decoded too.
"""

from __future__ import annotations

import base64
import binascii
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from dbos import DBOS, SetWorkflowID
from pydantic_ai import Agent, RunContext

from durable_dbos import DBOSAgent, DepsResolver

from .helpers import call, respond, scripted_model

pytestmark = pytest.mark.anyio

SECRET = 'sk-live-7d3a1f9c2e6b-secret'
WORKER_SECRETS = {'acme': SECRET}
RESOLVED: list[str] = []


class ApiClient:
    """A client holding a credential (picklable, so that the naive way records it instead of failing)."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key

    def authorized(self) -> bool:
        return self.api_key == SECRET


@dataclass
class TenantDeps:
    tenant: str
    client: ApiClient


def resolve_tenant(tenant: str) -> TenantDeps:
    RESOLVED.append(tenant)
    return TenantDeps(tenant, ApiClient(WORKER_SECRETS[tenant]))


RESOLVER = DepsResolver[TenantDeps, str](reference=lambda deps: deps.tenant, resolve=resolve_tenant)


def make_agent(name: str, *, resolver: DepsResolver[TenantDeps, str] | None) -> DBOSAgent[TenantDeps, str]:
    agent = Agent(scripted_model(respond(call('check_access')), respond('done')), name=name, deps_type=TenantDeps)

    @agent.tool
    def check_access(ctx: RunContext[TenantDeps]) -> str:
        # A step: it sees the live client.
        return f'{ctx.deps.tenant} authorized={ctx.deps.client.authorized()}'

    return DBOSAgent(agent, deps_resolver=resolver)


def secret_in_system_database(database_url: str) -> bool:
    """Whether `SECRET` is in the SQLite file (and its WAL) or in any cell of any table, base64 cells decoded."""
    path = Path(database_url.removeprefix('sqlite:///'))
    secret = SECRET.encode()
    for file in path.parent.glob(f'{path.name}*'):
        if secret in file.read_bytes():
            return True
    with sqlite3.connect(path) as connection:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert 'workflow_status' in tables
        for table in tables:
            for row in connection.execute(f'SELECT * FROM "{table}"'):  # names from sqlite_master
                for cell in row:
                    if cell is None:
                        continue
                    raw = cell if isinstance(cell, bytes) else str(cell).encode()
                    if secret in raw:
                        return True
                    try:
                        if secret in base64.b64decode(raw):
                            return True
                    except binascii.Error:
                        pass
    return False


async def test_resolved_deps_keep_the_secret_out_of_the_system_database(
    agent_name: str, dbos_launch: Callable[[], None], database_url: str
) -> None:
    dbos_agent = make_agent(agent_name, resolver=RESOLVER)
    dbos_launch()
    RESOLVED.clear()

    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        result = await dbos_agent.run('may I?', deps=resolve_tenant('acme'))

    assert result.output == 'done'
    tool_returns = [m for m in result.all_messages() if m.kind == 'request']
    assert 'acme authorized=True' in str(tool_returns)
    assert not secret_in_system_database(database_url)

    # Re-executed from its recorded inputs (as on recovery), the workflow resolves the reference again.
    RESOLVED.clear()
    handle = await DBOS.fork_workflow_async(workflow_id, 1)
    forked = await handle.get_result()
    assert forked.output == 'done'
    assert 'acme authorized=True' in str(forked.all_messages())
    assert RESOLVED == ['acme']
    assert not secret_in_system_database(database_url)


async def test_naive_deps_put_the_secret_in_the_system_database(
    agent_name: str, dbos_launch: Callable[[], None], database_url: str
) -> None:
    """The counter-test: the same live deps without a resolver are pickled into the workflow's inputs."""
    dbos_agent = make_agent(agent_name, resolver=None)
    dbos_launch()

    result = await dbos_agent.run('may I?', deps=TenantDeps('acme', ApiClient(SECRET)))

    assert result.output == 'done'
    assert secret_in_system_database(database_url)
