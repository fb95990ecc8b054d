"""Task configs reach Prefect: timeouts, persistence, result storage, overrides of tools and toolsets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from prefect.filesystems import LocalFileSystem
from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel
from pydantic_ai.toolsets import AbstractToolset, FunctionToolset

from durable_prefect import DEFAULT_TASK_CONFIG, PrefectAgent, TaskConfig, merge_task_config

from ._helpers import flow_runs_named, task_runs_of
from .test_resume import FlakyModel, flaky_agent

pytestmark = [pytest.mark.anyio]


def test_configs_merge_over_the_defaults_without_mutating_inputs() -> None:
    mine: TaskConfig = {'retries': 2}
    merged = merge_task_config(mine, {'timeout_seconds': 5})
    assert merged == {**DEFAULT_TASK_CONFIG, 'retries': 2, 'timeout_seconds': 5}
    assert mine == {'retries': 2}
    assert DEFAULT_TASK_CONFIG.get('retries') == 0


@pytest.mark.usefixtures('prefect_server')
async def test_timeout_seconds_is_applied_to_tool_tasks() -> None:
    async def slow() -> str:
        await asyncio.sleep(5)
        return 'too late'  # pragma: no cover

    prefect_agent = PrefectAgent(
        Agent(TestModel(), name='timeouts', tools=[slow]), tool_task_config={'timeout_seconds': 0.2}
    )
    with pytest.raises(TimeoutError):
        await prefect_agent.run('go')


@pytest.mark.usefixtures('prefect_server')
async def test_persist_result_false_means_a_retried_flow_run_requests_the_model_again() -> None:
    model, tool_calls = FlakyModel(), list[int]()
    prefect_agent = PrefectAgent(
        flaky_agent('unpersisted', model, tool_calls), model_task_config={'persist_result': False}
    )

    @flow(retries=1, retry_delay_seconds=0)
    async def parent() -> str:
        return (await prefect_agent.run('go')).output

    assert await parent() == 'done'
    assert model.requests == ['first', 'second', 'first', 'second']
    assert sorted(tool_calls) == [2, 5]  # tool results were persisted, and the model asked for the same calls


@pytest.mark.usefixtures('prefect_server')
async def test_result_storage_is_where_results_are_persisted(tmp_path: Path) -> None:
    storage = LocalFileSystem(basepath=str(tmp_path))
    # `asave` appeared in Prefect 3.6; before it, `save` is the awaitable form in async code.
    save: Any = getattr(storage, 'asave', None) or storage.save
    await save('durable-prefect-test-results', overwrite=True)
    prefect_agent = PrefectAgent(Agent(TestModel(), name='stored'), model_task_config={'result_storage': storage})
    await prefect_agent.run('go')
    assert len(list(tmp_path.iterdir())) == 1


@pytest.mark.usefixtures('prefect_server')
async def test_override_tools_and_toolsets_run_in_tasks() -> None:
    def from_override() -> str:
        return 'overridden tool'

    def from_toolset() -> str:
        return 'overridden toolset'

    prefect_agent = PrefectAgent(Agent(TestModel(), name='override-tools'))
    with prefect_agent.override(tools=[from_override], toolsets=[FunctionToolset([from_toolset])]):
        result = await prefect_agent.run('go')
    assert result.output == '{"from_override":"overridden tool","from_toolset":"overridden toolset"}'
    [flow_run] = await flow_runs_named('override-tools Run')
    names = sorted(run.name.rsplit('-', 1)[0] for run in await task_runs_of([flow_run.id], expected=4))
    assert names == [
        'Call Tool: from_override',
        'Call Tool: from_toolset',
        'Model Request: test',
        'Model Request: test',
    ]


def test_custom_prefectify_toolset_func_receives_the_merged_configs() -> None:
    seen: list[tuple[str, TaskConfig, TaskConfig, dict[str, TaskConfig | None]]] = []

    def prefectify(
        toolset: AbstractToolset[None],
        mcp_config: TaskConfig,
        tool_config: TaskConfig,
        by_name: dict[str, TaskConfig | None],
    ) -> AbstractToolset[None]:
        seen.append((type(toolset).__name__, mcp_config, tool_config, by_name))
        return toolset

    def ping() -> str:
        return 'pong'  # pragma: no cover

    mcp_config: TaskConfig = {'retries': 4}
    PrefectAgent(
        Agent(TestModel(), name='custom-prefectify', tools=[ping]),
        mcp_task_config=mcp_config,
        tool_task_config={'retries': 1},
        tool_task_config_by_name={'ping': None},
        prefectify_toolset_func=prefectify,
    )
    [(kind, mcp, tool, by_name)] = seen
    assert kind == '_AgentFunctionToolset'
    assert mcp == {**DEFAULT_TASK_CONFIG, 'retries': 4}
    assert tool == {**DEFAULT_TASK_CONFIG, 'retries': 1}
    assert by_name == {'ping': None}
    assert mcp_config == {'retries': 4}  # the caller's dict is not modified


def _failing_tool(kind: str, calls: list[str]) -> Callable[[], str]:
    def fails() -> str:
        calls.append(kind)
        raise RuntimeError(f'{kind} failure')

    return fails


@pytest.mark.usefixtures('prefect_server')
async def test_retry_condition_fn_decides_whether_a_failed_task_is_retried() -> None:
    calls: list[str] = []

    def retried_only_when_transient(task: Any, task_run: Any, state: Any) -> bool:
        return 'transient' in str(state.message)

    config: TaskConfig = {'retries': 2, 'retry_delay_seconds': 0, 'retry_condition_fn': retried_only_when_transient}
    for kind in ('transient', 'permanent'):
        tool = _failing_tool(kind, calls)
        agent = PrefectAgent(Agent(TestModel(), name=f'retry-condition-{kind}', tools=[tool]), tool_task_config=config)
        with pytest.raises(RuntimeError, match=f'{kind} failure'):
            await agent.run('go')
    assert calls == ['transient'] * 3 + ['permanent']
