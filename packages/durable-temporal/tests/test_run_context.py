"""TemporalRunContext: exactly the spec's fields cross into activities, `ctx.agent` is re-attached, subclassable."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from core_helpers import WORKFLOW_TIMEOUT
from pydantic_ai import Agent, RunContext
from pydantic_ai.exceptions import UserError
from pydantic_ai.models.test import TestModel
from pydantic_ai.usage import RunUsage
from temporalio import workflow
from temporalio.client import Client

from durable_kernel import PYDANTIC_AI_2
from durable_temporal import TemporalAgent, TemporalRunContext
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio

SPEC_FIELDS = {
    'deps',
    'run_id',
    'metadata',
    'retries',
    'tool_call_id',
    'tool_name',
    'tool_call_approved',
    'tool_call_metadata',
    'retry',
    'max_retries',
    'run_step',
    'usage',
    'partial_output',
    'loaded_capability_ids',
    'discovered_tool_names',
    # Renamed by pydantic-ai 2.x.
    'capability_active' if PYDANTIC_AI_2 else 'capability_loaded',
}


@dataclass
class Deps:
    tenant: str


SEEN: dict[str, Any] = {}

context_agent = Agent(TestModel(), name='ctx', deps_type=Deps)


@context_agent.tool
async def inspect_context(ctx: RunContext[Deps]) -> str:
    SEEN['type'] = type(ctx)
    SEEN['deps'] = ctx.deps
    SEEN['tool_name'] = ctx.tool_name
    SEEN['run_step'] = ctx.run_step
    SEEN['usage'] = ctx.usage
    SEEN['metadata'] = ctx.metadata
    SEEN['agent'] = ctx.agent
    try:
        SEEN['prompt'] = ctx.prompt
    except UserError as error:
        SEEN['prompt_error'] = str(error)
    return 'inspected'


class PromptRunContext(TemporalRunContext[Deps]):
    @classmethod
    def serialize_run_context(cls, ctx: RunContext[Any]) -> dict[str, Any]:
        return {**super().serialize_run_context(ctx), 'prompt': ctx.prompt}


default_context_agent = TemporalAgent(context_agent)
prompt_context_agent = TemporalAgent(context_agent, name='ctx_prompt', run_context_type=PromptRunContext)


@workflow.defn
class ContextWorkflow:
    @workflow.run
    async def run(self, which: str) -> str:
        agent = default_context_agent if which == 'default' else prompt_context_agent
        result = await agent.run('the prompt', deps=Deps(tenant='acme'), metadata={'trace': 'x'})
        return result.output


async def test_activity_sees_spec_fields_and_agent_and_a_helpful_error(client: Client, task_queue: str) -> None:
    async with agent_worker(
        client, workflows=[ContextWorkflow], agents=[default_context_agent, prompt_context_agent], task_queue=task_queue
    ):
        SEEN.clear()
        await client.execute_workflow(
            ContextWorkflow.run,
            'default',
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        assert SEEN['type'] is TemporalRunContext
        assert SEEN['deps'] == Deps(tenant='acme')
        assert SEEN['tool_name'] == 'inspect_context'
        assert SEEN['run_step'] == 1
        assert isinstance(SEEN['usage'], RunUsage)
        assert SEEN['usage'].requests == 1
        assert SEEN['metadata'] == {'trace': 'x'}
        assert SEEN['agent'] is context_agent
        assert 'TemporalRunContext.prompt` is not available' in SEEN['prompt_error']
        assert 'create a `TemporalRunContext` subclass with a custom `serialize_run_context`' in SEEN['prompt_error']

        SEEN.clear()
        await client.execute_workflow(
            ContextWorkflow.run,
            'prompt',
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        assert SEEN['type'] is PromptRunContext
        assert SEEN['prompt'] == 'the prompt'


def test_serialize_and_deserialize_carry_exactly_the_spec_fields() -> None:
    ctx = RunContext[Deps](
        deps=Deps(tenant='t'), model=TestModel(), usage=RunUsage(requests=2), prompt='p', run_step=3, retry=1
    )
    data = TemporalRunContext.serialize_run_context(ctx)
    assert set(data) | {'deps'} == SPEC_FIELDS
    rebuilt = TemporalRunContext[Deps].deserialize_run_context(data, deps=Deps(tenant='t'))
    assert isinstance(rebuilt, TemporalRunContext)
    assert (rebuilt.deps, rebuilt.run_step, rebuilt.retry, rebuilt.usage.requests) == (Deps(tenant='t'), 3, 1, 2)
    with pytest.raises(UserError, match='`TemporalRunContext.model` is not available'):
        rebuilt.model  # noqa: B018
    # Toolsets derive per-tool contexts with `dataclasses.replace`: that must not read unavailable fields.
    from dataclasses import replace

    assert replace(rebuilt, retry=2).retry == 2
