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


def _flow_run_that_leaves_a_foreign_agent_run_behind(agent: PrefectAgent[None, str], *, sync: bool) -> str:
    """A flow run whose first attempt starts an agent subflow of other code (another flow version) that fails; the
    retry runs the agent: as after switching from pydantic-ai's PrefectAgent to ours with the flow run in flight."""
    flow_name = f'{agent.name} Sync Run' if sync else f'{agent.name} Run'

    @flow(name=flow_name, version='other-code')
    def foreign_agent_run() -> None:
        raise RuntimeError('worker lost')

    @flow(retries=1)
    def outer() -> str:
        from prefect.context import FlowRunContext

        context = FlowRunContext.get()
        assert context is not None
        assert context.flow_run is not None
        if context.flow_run.run_count == 1:
            foreign_agent_run(return_state=True)
            raise RuntimeError('the first attempt dies')
        return agent.run_sync('go').output if sync else asyncio.run(agent.run('go')).output

    return outer()


@pytest.mark.parametrize('sync', [True, False], ids=['run_sync', 'run'])
def test_a_rerun_that_leaves_another_codes_agent_run_behind_warns(sync: bool) -> None:
    from durable_prefect import UnfinishedForeignAgentRunWarning

    agent = _agent(f'foreign-{"sync" if sync else "async"}')
    with pytest.warns(UnfinishedForeignAgentRunWarning, match=r"unfinished agent run .*'other-code'.* will run again"):
        assert _flow_run_that_leaves_a_foreign_agent_run_behind(agent, sync=sync) == '{"ping":"pong"}'


def test_a_rerun_of_our_own_agent_run_does_not_warn() -> None:
    import warnings

    from durable_prefect import UnfinishedForeignAgentRunWarning

    agent = _agent('own-rerun')

    @flow(retries=1)
    def outer() -> str:
        from prefect.context import FlowRunContext

        context = FlowRunContext.get()
        assert context is not None
        assert context.flow_run is not None
        output = agent.run_sync('go').output
        if context.flow_run.run_count == 1:
            raise RuntimeError('the first attempt dies after the agent ran')
        return output

    with warnings.catch_warnings():
        warnings.simplefilter('error', UnfinishedForeignAgentRunWarning)
        assert outer() == '{"ping":"pong"}'


def test_the_agent_flows_code_is_pinned() -> None:
    """`_agent_base.py` holds the agent's flow functions; Prefect finds a crashed run's agent subflow by a key over
    their code, line numbers included. Editing the file makes every flow run in flight at the upgrade repeat its calls
    (tests-integration/test_upgrade.py::test_prefect_run_recorded_on_1107_resumes_from_its_cache). Change it only on
    purpose: then re-record that fixture, say so in the changelog, and update this hash."""
    from durable_prefect._foreign_runs import AGENT_FLOW_VERSION

    assert AGENT_FLOW_VERSION == '470bb473da9d73db769e1036d528dbd8'
