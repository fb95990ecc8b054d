"""`run_sync` is the flow `{name} Sync Run`; inside a flow, `run` and `run_sync` are subflows."""

from __future__ import annotations

import asyncio

import pytest
from prefect import flow
from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel

from durable_prefect import PrefectAgent

from ._helpers import flow_runs_named, task_runs_of

pytestmark = [pytest.mark.usefixtures('prefect_server')]


def _agent(name: str) -> PrefectAgent[None, str]:
    agent = Agent(TestModel(), name=name)

    @agent.tool_plain
    def ping() -> str:
        return 'pong'

    return PrefectAgent(agent)


def test_run_sync_is_a_flow_with_tasks() -> None:
    assert _agent('sync').run_sync('go').output == '{"ping":"pong"}'
    [flow_run] = asyncio.run(flow_runs_named('sync Sync Run'))
    assert flow_run.parent_task_run_id is None
    names = [run.name.rsplit('-', 1)[0] for run in asyncio.run(task_runs_of([flow_run.id], expected=3))]
    assert names == ['Model Request: test', 'Call Tool: ping', 'Model Request: test']


def test_run_sync_inside_a_flow_is_a_subflow() -> None:
    agent = _agent('sync-sub')

    @flow
    def outer() -> str:
        return agent.run_sync('go').output

    assert outer() == '{"ping":"pong"}'
    [flow_run] = asyncio.run(flow_runs_named('sync-sub Sync Run'))
    assert flow_run.parent_task_run_id is not None


@pytest.mark.anyio
async def test_run_inside_a_flow_is_a_subflow() -> None:
    agent = _agent('async-sub')

    @flow
    async def outer() -> str:
        return (await agent.run('go')).output

    assert await outer() == '{"ping":"pong"}'
    [flow_run] = await flow_runs_named('async-sub Run')
    assert flow_run.parent_task_run_id is not None
    assert len(await task_runs_of([flow_run.id], expected=3)) == 3
