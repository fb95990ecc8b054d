"""pydantic-ai's spans are emitted once per run, not again each time a worker replays the workflow (defect 10)."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
from core_helpers import WORKFLOW_TIMEOUT
from pydantic_ai import Agent
from pydantic_ai.capabilities import Instrumentation
from pydantic_ai.models.instrumented import InstrumentationSettings
from pydantic_ai.models.test import TestModel
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Replayer

from durable_kernel import PYDANTIC_AI_2
from durable_temporal import PydanticAIPlugin, TemporalAgent
from durable_temporal.testing import agent_worker

with workflow.unsafe.imports_passed_through():
    # One exporter for the worker and the workflow sandbox, which would otherwise import its own copy.
    from tracing_support import EXPORTER, PROVIDER

pytestmark = pytest.mark.anyio

traced_agent = Agent(
    TestModel(), name='traced', capabilities=[Instrumentation(InstrumentationSettings(tracer_provider=PROVIDER))]
)


@traced_agent.tool_plain
async def weather(city: str) -> str:
    return f'sunny in {city}'


temporal_traced_agent = TemporalAgent(traced_agent)


@workflow.defn
class TracedWorkflow:
    @workflow.run
    async def run(self, prompt: str) -> str:
        return (await temporal_traced_agent.run(prompt)).output


async def test_a_replay_emits_no_span_again(client: Client, task_queue: str) -> None:
    EXPORTER.clear()
    async with agent_worker(client, workflows=[TracedWorkflow], agents=[temporal_traced_agent], task_queue=task_queue):
        handle = await client.start_workflow(
            TracedWorkflow.run,
            'weather?',
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        await handle.result()
    spans = Counter(span.name for span in EXPORTER.get_finished_spans())
    # The run's spans, each once: the agent run, its two model requests and its tool call (pydantic-ai 2.x names the
    # run and tool spans after the GenAI semantic conventions).
    run_span, tool_span = (
        ('invoke_agent traced', 'execute_tool weather') if PYDANTIC_AI_2 else ('agent run', 'running tool')
    )
    assert spans == {run_span: 1, 'chat test': 2, tool_span: 1}

    EXPORTER.clear()
    replayer = Replayer(workflows=[TracedWorkflow], plugins=[PydanticAIPlugin()])
    result = await replayer.replay_workflow(await handle.fetch_history(), raise_on_replay_failure=False)
    assert result.replay_failure is None
    assert EXPORTER.get_finished_spans() == ()
