"""`TemporalDurability`, the capability form: `Agent(..., capabilities=[TemporalDurability()])` on a real server."""

from __future__ import annotations

import inspect
import sys
import uuid
from collections.abc import AsyncIterable, Callable
from typing import Any

import pytest
from core_helpers import WORKFLOW_TIMEOUT, activity_names
from pydantic_ai import Agent, RunContext
from pydantic_ai.capabilities import ProcessEventStream
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import (
    AgentStreamEvent,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.toolsets import FunctionToolset
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError

from durable_kernel import ARGS_VALIDATOR_UNITS
from durable_temporal import AgentPlugin, PydanticAIWorkflow, TemporalAgent, TemporalDurability
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio


def shout(text: str) -> str:
    """Upper-case `text`."""
    return text.upper()


def _names(activities: list[Callable[..., Any]]) -> list[str]:
    return [activity._Definition.must_from_callable(fn).name or '' for fn in activities]  # pyright: ignore[reportPrivateUsage, reportUnknownMemberType]


def _durability(agent: Agent[Any, Any]) -> TemporalDurability[Any]:
    found: TemporalDurability[Any] | None = TemporalDurability.from_agent(agent)
    assert isinstance(found, TemporalDurability)
    return found


plain_agent = Agent(TestModel(), name='dur_plain', capabilities=[TemporalDurability()])
tool_agent = Agent(TestModel(), name='dur_tools', tools=[shout], capabilities=[TemporalDurability()])

# The handler runs in activities, in this (the worker's) process: it records what it was given there.
HANDLED: list[str] = []


async def record_events(ctx: RunContext[Any], events: AsyncIterable[AgentStreamEvent]) -> None:
    async for event in events:
        HANDLED.append(event.event_kind)


streaming_agent = Agent(
    TestModel(), name='dur_stream', tools=[shout], capabilities=[TemporalDurability(event_stream_handler=record_events)]
)

other_model = TestModel(custom_output_text='from the other model')
models_agent = Agent(
    TestModel(custom_output_text='from the default model'),
    name='dur_models',
    capabilities=[TemporalDurability(models={'other': other_model})],
)


def lookup_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    returned = [
        p.content for m in messages if isinstance(m, ModelRequest) for p in m.parts if isinstance(p, ToolReturnPart)
    ]
    if returned:
        return ModelResponse(parts=[TextPart(f'found {returned[0]}')])
    return ModelResponse(parts=[ToolCallPart('lookup', {'key': 'k1'})])


dynamic_agent = Agent(
    FunctionModel(lookup_model), name='dur_dynamic', deps_type=str, capabilities=[TemporalDurability()]
)


@dynamic_agent.toolset(id='by_tenant')
def tenant_tools(ctx: RunContext[str]) -> FunctionToolset[str]:
    async def lookup(key: str) -> str:
        return f'{key}@{ctx.deps}'

    return FunctionToolset([lookup])


@workflow.defn
class DynamicWorkflow:
    @workflow.run
    async def run(self, tenant: str) -> str:
        return (await dynamic_agent.run('look it up', deps=tenant)).output


@workflow.defn
class PlainWorkflow:
    @workflow.run
    async def run(self, prompt: str) -> str:
        return (await plain_agent.run(prompt)).output


@workflow.defn
class ToolWorkflow:
    @workflow.run
    async def run(self, prompt: str) -> str:
        return (await tool_agent.run(prompt)).output


@workflow.defn
class StreamingWorkflow:
    @workflow.run
    async def run(self, prompt: str) -> str:
        return (await streaming_agent.run(prompt)).output


@workflow.defn
class ModelsWorkflow:
    @workflow.run
    async def run(self, choice: str) -> str:
        model = {'default': None, 'other': other_model, 'unregistered': TestModel()}[choice]
        return (await models_agent.run('hi', model=model)).output


@workflow.defn
class ListingWorkflow(PydanticAIWorkflow):
    __pydantic_ai_agents__ = [tool_agent]

    @workflow.run
    async def run(self, prompt: str) -> str:
        return (await tool_agent.run(prompt)).output


async def enqueue_later(ctx: RunContext[None]) -> str:
    """Enqueue a message: refused inside the tool's activity, whose result a replayed workflow gets back."""
    ctx.enqueue('later')
    return 'enqueued'  # pragma: no cover


enqueue_agent = Agent(TestModel(), name='dur_enqueue', tools=[enqueue_later], capabilities=[TemporalDurability()])


@workflow.defn
class EnqueueWorkflow:
    @workflow.run
    async def run(self, prompt: str) -> str:
        try:
            return (await enqueue_agent.run(prompt)).output
        except Exception as error:  # the activity's `UserError`, as the workflow sees it
            return str(getattr(error, 'cause', None) or error)


@workflow.defn
class BindInWorkflow:
    @workflow.run
    async def run(self, _: None = None) -> str:  # `_execute` passes `None`, which temporalio < 1.24 hands on
        # Caught here so the outcome does not depend on which errors the worker treats as workflow failures.
        try:
            TemporalDurability.from_agent(Agent(TestModel(), name='dur_late', capabilities=[TemporalDurability()]))
        except UserError as error:
            return str(error)
        return 'bound'  # pragma: no cover


async def _execute(client: Client, workflow_run: Any, arg: Any, task_queue: str) -> tuple[Any, list[str]]:
    handle = await client.start_workflow(
        workflow_run, arg, id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
    )
    output = await handle.result()
    return output, await activity_names(client, handle)


async def test_a_plain_run_in_a_workflow(client: Client, task_queue: str):
    async with agent_worker(
        client, workflows=[PlainWorkflow], plugins=[AgentPlugin(plain_agent)], task_queue=task_queue
    ):
        output, names = await _execute(client, PlainWorkflow.run, 'hello', task_queue)
    assert output == 'success (no tool calls)'
    assert names == ['agent__dur_plain__model_request']


async def test_a_run_with_a_function_tool_in_a_workflow(client: Client, task_queue: str):
    async with agent_worker(client, workflows=[ToolWorkflow], plugins=[AgentPlugin(tool_agent)], task_queue=task_queue):
        output, names = await _execute(client, ToolWorkflow.run, 'hello', task_queue)
    assert output == '{"shout":"A"}'
    assert names == [
        'agent__dur_tools__model_request',
        'agent__dur_tools__toolset__<agent>__call_tool',
        'agent__dur_tools__model_request',
    ]


async def test_a_dynamic_toolset_is_listed_and_called_in_activities(client: Client, task_queue: str):
    async with agent_worker(
        client, workflows=[DynamicWorkflow], plugins=[AgentPlugin(dynamic_agent)], task_queue=task_queue
    ):
        output, names = await _execute(client, DynamicWorkflow.run, 'acme', task_queue)
    assert output == 'found k1@acme'
    assert names == [
        'agent__dur_dynamic__dynamic_toolset__by_tenant__get_tools',
        'agent__dur_dynamic__model_request',
        'agent__dur_dynamic__dynamic_toolset__by_tenant__call_tool',
        'agent__dur_dynamic__dynamic_toolset__by_tenant__get_tools',
        'agent__dur_dynamic__model_request',
    ]


async def test_streamed_model_and_event_handler_activities(client: Client, task_queue: str):
    HANDLED.clear()
    async with agent_worker(
        client, workflows=[StreamingWorkflow], plugins=[AgentPlugin(streaming_agent)], task_queue=task_queue
    ):
        output, names = await _execute(client, StreamingWorkflow.run, 'hello', task_queue)
    assert output == '{"shout":"A"}'
    # The model's streamed events reach the handler inside the streamed model activity; each other event (the tool
    # call and its result) in an activity of its own, before the run goes on.
    assert names == [
        'agent__dur_stream__model_request_stream',
        'agent__dur_stream__event_stream_handler',
        'agent__dur_stream__toolset__<agent>__call_tool',
        'agent__dur_stream__event_stream_handler',
        'agent__dur_stream__model_request_stream',
    ]
    assert HANDLED.count('function_tool_call') == 1
    assert HANDLED.count('function_tool_result') == 1
    assert 'part_start' in HANDLED
    assert 'final_result' in HANDLED


@pytest.mark.parametrize(
    ('choice', 'expected'), [('default', 'from the default model'), ('other', 'from the other model')]
)
async def test_models_selects_a_registered_model(client: Client, task_queue: str, choice: str, expected: str):
    async with agent_worker(
        client, workflows=[ModelsWorkflow], plugins=[AgentPlugin(models_agent)], task_queue=task_queue
    ):
        output, names = await _execute(client, ModelsWorkflow.run, choice, task_queue)
    assert output == expected
    assert names == ['agent__dur_models__model_request']


async def test_an_unregistered_model_instance_fails_the_workflow(client: Client, task_queue: str):
    async with agent_worker(
        client, workflows=[ModelsWorkflow], plugins=[AgentPlugin(models_agent)], task_queue=task_queue
    ):
        with pytest.raises(WorkflowFailureError) as failure:
            await _execute(client, ModelsWorkflow.run, 'unregistered', task_queue)
    assert 'Register it under a key' in str(failure.value.cause)


async def test_outside_a_workflow_the_capability_changes_nothing():
    HANDLED.clear()
    plain = Agent(TestModel(), name='dur_stream', tools=[shout], capabilities=[ProcessEventStream(record_events)])
    expected = await plain.run('hello')
    handled_without = list(HANDLED)
    HANDLED.clear()
    # No worker, no server: outside a workflow the agent runs as if the capability were not there.
    result = await streaming_agent.run('hello')
    assert result.output == expected.output
    assert [type(m) for m in result.all_messages()] == [type(m) for m in expected.all_messages()]
    assert handled_without == HANDLED
    assert 'function_tool_call' in HANDLED
    durability = _durability(streaming_agent)
    assert durability.get_wrapper_toolset(tool_agent.toolsets[0]) is None


async def test_pydantic_ai_agents_registers_a_capability_agent(client: Client, task_queue: str):
    # No `AgentPlugin`: the client's `PydanticAIPlugin` finds the agent in `__pydantic_ai_agents__`.
    async with agent_worker(client, workflows=[ListingWorkflow], task_queue=task_queue):
        output, names = await _execute(client, ListingWorkflow.run, 'hello', task_queue)
    assert output == '{"shout":"A"}'
    assert names[1] == 'agent__dur_tools__toolset__<agent>__call_tool'


def test_activity_names_are_those_of_pydantic_ai_2_capability_form():
    # As pydantic-ai 2.x's `TemporalDurability` names them (`test_compat_durability.py` compares with it on 2.x); the
    # `validate_args` activity only where the installed pydantic-ai validates tool arguments in one (`ARGS_VALIDATOR_UNITS`).
    names = sorted(_names(_durability(streaming_agent).temporal_activities))
    assert names == [
        'agent__dur_stream__event_stream_handler',
        'agent__dur_stream__external_event_ask',
        'agent__dur_stream__model_cancel_suspended_response',
        'agent__dur_stream__model_compact_messages',
        'agent__dur_stream__model_count_tokens',
        'agent__dur_stream__model_request',
        'agent__dur_stream__model_request_stream',
        'agent__dur_stream__toolset__<agent>__call_tool',
        *(['agent__dur_stream__toolset__<agent>__validate_args'] if ARGS_VALIDATOR_UNITS else []),
    ]
    # Without a handler there is no event activity, as with pydantic-ai 2.x.
    assert 'agent__dur_tools__event_stream_handler' not in _names(_durability(tool_agent).temporal_activities)


def test_a_plain_agent_is_refused_by_agent_plugin():
    with pytest.raises(UserError, match=r'neither a TemporalAgent nor .*capabilities=\[TemporalDurability\(\)\]'):
        AgentPlugin(Agent(TestModel(), name='dur_bare'))


def _stop(ctx: RunContext[Any]) -> None:
    return None


def test_continue_as_new_is_kept_as_given():
    # (It runs in test_continue_as_new.py; `continue_as_new_after` without a handler is refused there.)
    durability = TemporalDurability[Any](continue_as_new=_stop)
    assert durability.continue_as_new is _stop
    assert durability.continue_as_new_after is None


def test_a_topic_without_workflow_streams_names_the_temporalio_needed(monkeypatch: pytest.MonkeyPatch):
    """Live events (test_live_events.py) need temporalio >= 1.27.0; on an older one a topic is refused at once."""
    # `None` in `sys.modules` makes the import fail, as on a temporalio without `contrib.workflow_streams`.
    monkeypatch.setitem(sys.modules, 'temporalio.contrib.workflow_streams', None)
    with pytest.raises(UserError, match=r'temporalio >= 1\.27\.0'):
        TemporalDurability(event_stream_topic='agent-events')
    with pytest.raises(UserError, match=r'temporalio >= 1\.27\.0'):
        TemporalAgent(Agent(TestModel(), name='live_old'), event_stream_topic='agent-events')


def test_an_agent_without_a_name_is_refused():
    with pytest.raises(UserError, match='needs a unique `name`, the same in every deploy'):
        TemporalDurability.from_agent(Agent(TestModel(), capabilities=[TemporalDurability()]))


def test_two_durability_capabilities_are_refused():
    with pytest.raises(UserError, match='several durability capabilities'):
        TemporalDurability.from_agent(
            Agent(TestModel(), name='dur_twice', capabilities=[TemporalDurability(), TemporalDurability()])
        )


def test_an_unbound_capability_has_no_activities():
    with pytest.raises(UserError, match='not bound to an agent'):
        _names(TemporalDurability().temporal_activities)


async def test_binding_inside_a_workflow_is_refused(client: Client, task_queue: str):
    async with agent_worker(client, workflows=[BindInWorkflow], task_queue=task_queue):
        output, _ = await _execute(client, BindInWorkflow.run, None, task_queue)
    assert 'must be created outside a Temporal workflow' in output


async def test_enqueue_inside_a_tool_activity_is_refused(client: Client, task_queue: str):
    async with agent_worker(
        client, workflows=[EnqueueWorkflow], plugins=[AgentPlugin(enqueue_agent)], task_queue=task_queue
    ):
        output, names = await _execute(client, EnqueueWorkflow.run, 'go', task_queue)
    assert 'enqueued messages would be dropped' in output
    assert names[:2] == ['agent__dur_enqueue__model_request', 'agent__dur_enqueue__toolset__<agent>__call_tool']


# pydantic-ai 2.78's external events (`wait_for_external_event`) wait durably in both forms: `test_external_events.py`.


override_agent = Agent(TestModel(), name='dur_override', capabilities=[TemporalDurability()])


@workflow.defn
class OverrideWorkflow:
    @workflow.run
    async def run(self, prompt: str) -> str:
        return (await override_agent.run(prompt)).output


@pytest.mark.skipif(
    'capabilities' not in inspect.signature(Agent.override).parameters,
    reason='`override(capabilities=...)` exists from pydantic-ai 2.78',
)
async def test_an_override_that_drops_the_durability_is_refused(client: Client, task_queue: str):
    agent: Any = override_agent
    with (
        pytest.raises(UserError, match=r"leaves out the agent's `TemporalDurability`: runs inside the block"),
        agent.override(capabilities=[]),
    ):
        pass  # pragma: no cover
    with (
        pytest.raises(UserError, match=r"leaves out the agent's `TemporalDurability`"),
        agent.override(capabilities=[TemporalDurability()]),
    ):
        pass  # pragma: no cover
    # The agent's own list is accepted and changes nothing in the workflow.
    with agent.override(capabilities=[*agent.root_capability.capabilities]):
        pass
    async with agent_worker(
        client, workflows=[OverrideWorkflow], plugins=[AgentPlugin(override_agent)], task_queue=task_queue
    ):
        output, names = await _execute(client, OverrideWorkflow.run, 'hello', task_queue)
    assert output == 'success (no tool calls)'
    assert names == ['agent__dur_override__model_request']
