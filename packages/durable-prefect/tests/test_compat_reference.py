"""Compatibility with the reference implementation: the same flow and task names for the same agent."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from pydantic_ai import Agent
from pydantic_ai.durable_exec.prefect import PrefectAgent as ReferencePrefectAgent
from pydantic_ai.durable_exec.prefect import TaskConfig as ReferenceTaskConfig
from pydantic_ai.models.test import TestModel

from durable_kernel import PYDANTIC_AI_2
from durable_prefect import PrefectAgent, TaskConfig

from ._helpers import flow_runs_named, task_runs_of

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures('prefect_server')]


def _agent(name: str) -> Agent[None, str]:
    agent = Agent(TestModel(), name=name)

    @agent.tool_plain
    def ping() -> str:
        return 'pong'

    return agent


async def _names(flow_name: str) -> list[str]:
    [flow_run] = await flow_runs_named(flow_name)
    return [run.name.rsplit('-', 1)[0] for run in await task_runs_of([flow_run.id], expected=3)]


def _reference_agent(agent: Agent[None, str]) -> Any:
    with warnings.catch_warnings():
        # pydantic-ai 2.x deprecates its own `PrefectAgent` (for a capability): the comparison still stands.
        warnings.filterwarnings('ignore', message='`PrefectAgent` is deprecated', category=UserWarning)
        return ReferencePrefectAgent(agent)


async def test_same_flow_and_task_names_as_the_reference() -> None:
    ours = await PrefectAgent(_agent('compat-ours')).run('go')
    reference = await _reference_agent(_agent('compat-reference')).run('go')
    assert ours.output == reference.output
    assert await _names('compat-ours Run') == await _names('compat-reference Run')


def test_task_config_keys_match_the_reference() -> None:
    # `retry_condition_fn` came with pydantic-ai 2.x's `TaskConfig`; ours accepts it on both lines.
    ours, reference = set(TaskConfig.__annotations__), set(ReferenceTaskConfig.__annotations__)
    assert ours - reference == (set() if PYDANTIC_AI_2 else {'retry_condition_fn'})
    assert reference <= ours
