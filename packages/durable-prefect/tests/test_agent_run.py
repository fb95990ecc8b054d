from __future__ import annotations

import pytest
from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel

from durable_prefect import PrefectAgent

from ._helpers import flow_runs_named, task_runs_of

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures('prefect_server')]


async def test_run_is_a_flow_with_model_and_tool_tasks() -> None:
    calls: list[int] = []
    agent = Agent(TestModel(), name='basic')

    @agent.tool_plain
    def add_one(x: int) -> int:
        calls.append(x)
        return x + 1

    prefect_agent = PrefectAgent(agent)
    result = await prefect_agent.run('go')
    assert result.output == '{"add_one":1}'
    assert calls == [0]
    [flow_run] = await flow_runs_named('basic Run')
    names = [run.name.rsplit('-', 1)[0] for run in await task_runs_of([flow_run.id], expected=3)]
    assert names == ['Model Request: test', 'Call Tool: add_one', 'Model Request: test']
