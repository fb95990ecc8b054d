"""`LogfirePlugin`: tracing interceptors on client and worker, Logfire configured on connect, no network."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import cast

import logfire
import pytest
from logfire.testing import TestExporter
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel
from temporalio import workflow
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.testing import WorkflowEnvironment

from durable_temporal import LogfirePlugin, PydanticAIPlugin, PydanticAIWorkflow, TemporalAgent
from durable_temporal.testing import agent_worker

pytestmark = [pytest.mark.anyio, pytest.mark.xdist_group(name='logfire')]

traced_agent = TemporalAgent(Agent(TestModel(custom_output_text='traced'), name='logfire_traced'))


@workflow.defn
class TracedWorkflow(PydanticAIWorkflow):
    __pydantic_ai_agents__ = [traced_agent]

    @workflow.run
    async def run(self, prompt: str) -> str:
        return (await traced_agent.run(prompt)).output


@pytest.fixture
def exporter() -> Iterator[TestExporter]:
    """Spans of this test; Logfire is configured back to exporting nothing afterwards (it is process-global)."""
    spans = TestExporter()
    yield spans
    logfire.configure(send_to_logfire=False, console=False, metrics=False)


async def test_logfire_plugin_traces_a_workflow(env: WorkflowEnvironment, task_queue: str, exporter: TestExporter):
    setups: list[logfire.Logfire] = []

    def setup_logfire() -> logfire.Logfire:
        instance = logfire.configure(
            send_to_logfire=False, console=False, additional_span_processors=[SimpleSpanProcessor(exporter)]
        )
        setups.append(instance)
        return instance

    plugin = LogfirePlugin(setup_logfire)
    assert any(isinstance(interceptor, TracingInterceptor) for interceptor in plugin.interceptors or ())
    client = await Client.connect(env.client.service_client.config.target_host, plugins=[PydanticAIPlugin(), plugin])
    assert len(setups) == 1
    # Logfire sends nothing here, so the plugin leaves the runtime (and its metrics) alone.
    assert client.service_client.config.runtime is None

    async with agent_worker(client, workflows=[TracedWorkflow], task_queue=task_queue):
        output = await client.execute_workflow(TracedWorkflow.run, 'hi', id=str(uuid.uuid4()), task_queue=task_queue)
    assert output == 'traced'

    names = {span['name'] for span in exporter.exported_spans_as_dict()}
    assert {'StartWorkflow:TracedWorkflow', 'RunWorkflow:TracedWorkflow'} <= names
    assert {
        'StartActivity:agent__logfire_traced__model_request',
        'RunActivity:agent__logfire_traced__model_request',
    } <= names


async def test_logfire_plugin_default_setup_needs_no_arguments():
    plugin = LogfirePlugin(metrics=False)
    assert plugin.metrics is False
    assert plugin.name() == 'durable_temporal.LogfirePlugin'


def _sending_logfire(metrics: object = None) -> logfire.Logfire:
    """Stands in for a Logfire that sends data (with a token), whose endpoint is a closed local port: no network."""
    advanced = SimpleNamespace(generate_base_url=lambda token: 'http://127.0.0.1:9')  # pyright: ignore[reportUnknownLambdaType]
    config = SimpleNamespace(send_to_logfire=True, token='pylf_v1_us_test', metrics=metrics, advanced=advanced)
    return cast(logfire.Logfire, SimpleNamespace(config=config))


async def test_logfire_plugin_exports_sdk_metrics_when_logfire_sends_data(env: WorkflowEnvironment, task_queue: str):
    target = env.client.service_client.config.target_host
    client = await Client.connect(target, plugins=[PydanticAIPlugin(), LogfirePlugin(_sending_logfire)])
    runtime = client.service_client.config.runtime
    assert runtime is not None
    async with agent_worker(client, workflows=[TracedWorkflow], task_queue=task_queue):
        output = await client.execute_workflow(TracedWorkflow.run, 'hi', id=str(uuid.uuid4()), task_queue=task_queue)
    assert output == 'traced'


@pytest.mark.parametrize(
    ('plugin', 'why'),
    [
        (LogfirePlugin(_sending_logfire, metrics=False), 'metrics=False'),
        (LogfirePlugin(lambda: _sending_logfire(metrics=False)), "Logfire's own metrics=False"),
    ],
)
async def test_logfire_plugin_leaves_metrics_off(env: WorkflowEnvironment, plugin: LogfirePlugin, why: str):
    client = await Client.connect(env.client.service_client.config.target_host, plugins=[plugin])
    assert client.service_client.config.runtime is None, why
