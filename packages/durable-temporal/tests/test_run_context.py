"""TemporalRunContext: exactly the spec's fields cross into activities, `ctx.agent` is re-attached, subclassable.

The serialized context is `Any` in the activity payload, so the JSON converter hands sets back as lists and
dataclasses as dicts; the tests below send it through the real converter and check what the activity gets.
"""

from __future__ import annotations

import importlib
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from core_helpers import WORKFLOW_TIMEOUT
from pydantic_ai import Agent, RunContext
from pydantic_ai.exceptions import UserError
from pydantic_ai.models.test import TestModel
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.usage import RunUsage
from temporalio import workflow
from temporalio.client import Client
from temporalio.converter import DataConverter

from durable_kernel import AVAILABILITY_SNAPSHOTS, PYDANTIC_AI_2
from durable_kernel._compat import CAPABILITY_STATE_FIELD
from durable_temporal import PydanticAIPlugin, TemporalAgent, TemporalRunContext
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
    # `capability_loaded`, renamed `capability_active` after pydantic-ai 2.33 (the installed release's name is sent).
    CAPABILITY_STATE_FIELD,
    'conversation_id',
    'trace_include_content',
    'instrumentation_version',
    # pydantic-ai 2.x only.
    *(('usage_limits', '_anchored_evidence') if PYDANTIC_AI_2 else ()),
    # Availability sent as computed at dispatch (kernel `AVAILABILITY_SNAPSHOTS`; 2.68 renamed the capability ids).
    *AVAILABILITY_SNAPSHOTS,
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


async def _across_the_converter(data: dict[str, Any]) -> dict[str, Any]:
    # What an activity receives: the serialized context inside an `Any`-typed payload, decoded without a type.
    config: Any = {'data_converter': DataConverter()}
    converter: DataConverter = PydanticAIPlugin().configure_client(config)['data_converter']
    (decoded,) = await converter.decode(await converter.encode([data]), [dict[str, Any]])
    return decoded


async def test_sets_and_usage_arrive_as_what_they_were() -> None:
    """Sets arrived as lists: `available_tool_names` raised `TypeError` (`set | list`), `.add()` an `AttributeError`."""
    ctx = RunContext[None](
        deps=None,
        model=TestModel(),
        usage=RunUsage(input_tokens=3),
        run_id='run-1',
        conversation_id='conv-1',
        discovered_tool_names={'searched_tool'},
        loaded_capability_ids={'cap'},
        trace_include_content=True,
        instrumentation_version=2,
    )
    wire = await _across_the_converter(TemporalRunContext.serialize_run_context(ctx))
    assert wire['discovered_tool_names'] == ['searched_tool']
    assert isinstance(wire['usage'], dict)

    rebuilt = TemporalRunContext[None].deserialize_run_context(wire, deps=None)
    assert rebuilt.discovered_tool_names == {'searched_tool'}
    rebuilt.loaded_capability_ids.add('loaded_in_activity')
    assert rebuilt.loaded_capability_ids == {'cap', 'loaded_in_activity'}
    assert rebuilt.usage == RunUsage(input_tokens=3)
    assert (rebuilt.conversation_id, rebuilt.trace_include_content, rebuilt.instrumentation_version) == (
        'conv-1',
        True,
        2,
    )
    # Live tool state stays behind: `tool_manager` is `None`, and availability answers from the carried names.
    assert rebuilt.tool_manager is None
    assert rebuilt.available_tool_names == {'searched_tool'}


@pytest.mark.skipif(
    not PYDANTIC_AI_2, reason='usage_limits and the anchored reveal evidence are pydantic-ai 2.x fields'
)
async def test_usage_limits_and_anchored_evidence_cross_on_pydantic_ai_2() -> None:
    # Names of pydantic-ai 2.x only, reached through `Any` so that the module type-checks on both lines.
    evidence_type: Any = importlib.import_module('pydantic_ai._run_context').AnchoredEvidence
    limits_type: Any = importlib.import_module('pydantic_ai.usage').UsageLimits
    tool_def_type: Any = ToolDefinition

    evidence = evidence_type(discovered_tool_names=frozenset({'deferred_tool'}))
    new_fields: dict[str, Any] = {'usage_limits': limits_type(request_limit=7), '_anchored_evidence': evidence}
    ctx = RunContext[None](deps=None, model=TestModel(), usage=RunUsage(), **new_fields)
    wire = await _across_the_converter(TemporalRunContext.serialize_run_context(ctx))
    rebuilt: Any = TemporalRunContext[None].deserialize_run_context(wire, deps=None)
    assert rebuilt.usage_limits == limits_type(request_limit=7)
    assert rebuilt._anchored_evidence == evidence

    # A payload made by an older `serialize_run_context` override, without the evidence, still answers.
    older = {k: v for k, v in wire.items() if k != '_anchored_evidence'}
    rebuilt = TemporalRunContext[None].deserialize_run_context(older, deps=None)
    assert rebuilt.is_tool_available(tool_def_type(name='hidden', defer_loading=True)) is False


conversation_agent = Agent(TestModel(call_tools=['report_conversation']), name='ctx_conversation')


@conversation_agent.tool
async def report_conversation(ctx: RunContext[None]) -> dict[str, Any]:
    return {
        'conversation_id': ctx.conversation_id,
        'discovered_type': type(ctx.discovered_tool_names).__name__,
        'available': sorted(ctx.available_tool_names),
    }


temporal_conversation_agent = TemporalAgent(conversation_agent)


@workflow.defn
class ConversationWorkflow:
    @workflow.run
    async def run(self) -> list[Any]:
        result = await temporal_conversation_agent.run('hi')
        returns = [
            part.content
            for message in result.all_messages()
            for part in message.parts
            if part.part_kind == 'tool-return'
        ]
        return [returns[0], result.conversation_id if PYDANTIC_AI_2 else None]


async def test_a_tool_in_an_activity_sees_the_conversation_and_its_tools(client: Client, task_queue: str) -> None:
    async with agent_worker(
        client, workflows=[ConversationWorkflow], agents=[temporal_conversation_agent], task_queue=task_queue
    ):
        report, conversation_id = await client.execute_workflow(
            ConversationWorkflow.run, id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
        )
    assert report['conversation_id']
    if PYDANTIC_AI_2:
        assert report['conversation_id'] == conversation_id
    assert report['discovered_type'] == 'set'
    # The workflow's answer, sent at dispatch: the always-visible tool itself (it was `[]`, from the discovered names).
    assert report['available'] == ['report_conversation']
