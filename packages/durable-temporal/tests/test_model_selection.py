"""The capability form selects models by key string and by model-name string (pydantic-ai 2.x) on a real server.

The workflow sends the string to the model activity, which resolves it again: a `models=` key to the registered
instance, an alias through the agent's `resolve_model_id` capabilities with the run's deps, anything else with
`infer_model`. A string default model is sent the same way.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from core_helpers import WORKFLOW_TIMEOUT, activity_names
from pydantic_ai import Agent, capabilities
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel
from temporalio import workflow
from temporalio.client import Client

from durable_kernel import PYDANTIC_AI_2
from durable_temporal import AgentPlugin, TemporalDurability
from durable_temporal.testing import agent_worker

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not PYDANTIC_AI_2, reason='pydantic-ai 1.107 builds model strings before capabilities'),
]


def _tenant_model(tenant: str) -> FunctionModel:
    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart(f'tenant:{tenant}')])

    return FunctionModel(respond, model_name='tenant-model')


def _tenant_resolver(ctx: Any, model_id: str) -> Model | None:
    # Built from the run's deps, in workflow code and again in the model activity.
    return _tenant_model(ctx.deps) if model_id == 'tenant-model' else None


def _capabilities(durability: TemporalDurability[Any]) -> list[AbstractCapability[Any]]:
    if not PYDANTIC_AI_2:
        return [durability]
    # 2.x only (looked up by name, so that this module imports on 1.107, where the tests are skipped).
    resolve_model_id: Any = vars(capabilities)['ResolveModelId']
    return [resolve_model_id(_tenant_resolver), durability]


alt_model = TestModel(custom_output_text='from alt')
keyed_agent = Agent(
    TestModel(custom_output_text='from default'),
    name='sel_keyed',
    deps_type=str,
    capabilities=_capabilities(TemporalDurability(models={'alt': alt_model})),
)
string_default_agent = Agent('test', name='sel_string_default', capabilities=[TemporalDurability()])


@workflow.defn
class SelectionWorkflow:
    @workflow.run
    async def run(self, choice: str) -> list[str]:
        if choice == 'string-default':
            return [
                (await string_default_agent.run('a')).output,
                (await string_default_agent.run('b', model='test')).output,
            ]
        outputs = [(await keyed_agent.run('a', model='alt', deps='acme')).output]
        with keyed_agent.override(model='alt'):
            outputs.append((await keyed_agent.run('b', deps='acme')).output)
        outputs.append((await keyed_agent.run('c', model='default', deps='acme')).output)
        for tenant in ('acme', 'globex'):
            outputs.append((await keyed_agent.run('d', model='tenant-model', deps=tenant)).output)
        outputs.append((await keyed_agent.run('e', model='test', deps='acme')).output)
        return outputs


async def _execute(client: Client, choice: str, task_queue: str) -> tuple[list[str], list[str]]:
    handle = await client.start_workflow(
        SelectionWorkflow.run, choice, id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
    )
    return await handle.result(), await activity_names(client, handle)


async def test_keys_aliases_and_model_names_are_resolved_again_in_the_activity(client: Client, task_queue: str):
    async with agent_worker(
        client, workflows=[SelectionWorkflow], plugins=[AgentPlugin(keyed_agent)], task_queue=task_queue
    ):
        outputs, names = await _execute(client, 'keyed', task_queue)
    assert outputs == [
        'from alt',
        'from alt',
        'from default',
        'tenant:acme',
        'tenant:globex',
        'success (no tool calls)',
    ]
    assert names == ['agent__sel_keyed__model_request'] * 6


async def test_a_string_default_model_is_built_in_the_activity(client: Client, task_queue: str):
    async with agent_worker(
        client, workflows=[SelectionWorkflow], plugins=[AgentPlugin(string_default_agent)], task_queue=task_queue
    ):
        outputs, names = await _execute(client, 'string-default', task_queue)
    assert outputs == ['success (no tool calls)', 'success (no tool calls)']
    assert names == ['agent__sel_string_default__model_request'] * 2
