"""What cannot be durable is refused inside a workflow with a UserError naming the alternative; outside, all works."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from core_helpers import WORKFLOW_TIMEOUT
from pydantic_ai import Agent, BinaryImage, FunctionToolset
from pydantic_ai.exceptions import UserError
from pydantic_ai.models.test import TestModel
from pydantic_ai.models.wrapper import WrapperModel
from temporalio import workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from durable_temporal import TemporalAgent
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio


@dataclass
class AnyDeps:
    value: Any = None


plain_agent = Agent(TestModel(), name='refusals', deps_type=AnyDeps)


@plain_agent.tool_plain
async def echo(text: str) -> str:
    return text


temporal_agent = TemporalAgent(plain_agent)
extra_toolset = FunctionToolset[AnyDeps](id='extra')
unregistered_model = TestModel()


async def _handler(ctx: Any, events: Any) -> None:
    async for _ in events:
        pass


@workflow.defn
class RefusalWorkflow:
    @workflow.run
    async def run(self, case: str) -> str:
        agent = temporal_agent
        if case == 'run_sync':
            agent.run_sync('hi', deps=AnyDeps())
        elif case == 'run_stream':
            async with agent.run_stream('hi', deps=AnyDeps()):
                pass
        elif case == 'run_stream_events':
            agent.run_stream_events('hi', deps=AnyDeps())
        elif case == 'iter':
            async with agent.iter('hi', deps=AnyDeps()):
                pass
        elif case == 'run_event_stream_handler':
            await agent.run('hi', deps=AnyDeps(), event_stream_handler=_handler)
        elif case == 'run_toolsets':
            await agent.run('hi', deps=AnyDeps(), toolsets=[extra_toolset])
        elif case in ('model', 'toolsets', 'tools', 'native_tools'):
            values: dict[str, Any] = {'model': TestModel(), 'toolsets': [], 'tools': [], 'native_tools': []}
            with agent.override(**{case: values[case]}):
                pass
        elif case == 'unregistered_model':
            await agent.run('hi', deps=AnyDeps(), model=unregistered_model)
        elif case == 'unserializable_deps':
            await agent.run('hi', deps=AnyDeps(value=object()))
        elif case == 'image_output':
            await agent.run('hi', deps=AnyDeps(), output_type=BinaryImage)
        return 'not refused'


REFUSALS = {
    'run_sync': '`agent.run_sync()` cannot be used inside a Temporal workflow. Use `await agent.run()` instead.',
    'run_stream': '`agent.run_stream()` cannot be used inside a Temporal workflow. Set an `event_stream_handler`',
    'run_stream_events': '`agent.run_stream_events()` cannot be used inside a Temporal workflow. Set an',
    'iter': '`agent.iter()` cannot be used inside a Temporal workflow. Set an `event_stream_handler`',
    'run_event_stream_handler': 'Pass `event_stream_handler=` to `TemporalAgent(...)` instead.',
    'run_toolsets': 'Add them to the agent before wrapping it in `TemporalAgent(...)`.',
    'model': '`model` cannot be overridden inside a Temporal workflow',
    'toolsets': '`toolsets` cannot be overridden inside a Temporal workflow',
    'tools': '`tools` cannot be overridden inside a Temporal workflow',
    'native_tools': '`native_tools` cannot be overridden inside a Temporal workflow',
    'unregistered_model': 'Register it with `TemporalAgent(..., models={"name": model})`',
    'unserializable_deps': 'must be serializable by pydantic',
    'image_output': 'Image output cannot be used inside a Temporal workflow',
}


async def test_refusals_inside_workflow_fail_the_workflow_with_user_error(client: Client, task_queue: str) -> None:
    async with agent_worker(client, workflows=[RefusalWorkflow], agents=[temporal_agent], task_queue=task_queue):
        failures: dict[str, tuple[str | None, str]] = {}

        async def run_case(case: str) -> None:
            with pytest.raises(WorkflowFailureError) as info:
                await client.execute_workflow(
                    RefusalWorkflow.run,
                    case,
                    id=f'{case}-{uuid.uuid4()}',
                    task_queue=task_queue,
                    execution_timeout=WORKFLOW_TIMEOUT,
                )
            cause = info.value.cause
            assert isinstance(cause, ApplicationError)
            failures[case] = (cause.type, cause.message)

        async with anyio.create_task_group() as tg:
            for case in REFUSALS:
                tg.start_soon(run_case, case)
    for case, expected in REFUSALS.items():
        error_type, message = failures[case]
        assert error_type == 'UserError', (case, error_type, message)
        assert expected in message, (case, message)


async def test_entry_points_outside_workflow_behave_as_the_wrapped_agent() -> None:
    result = await temporal_agent.run('hi', deps=AnyDeps())
    assert result.output == (await plain_agent.run('hi', deps=AnyDeps())).output
    async with temporal_agent.run_stream('hi', deps=AnyDeps()) as streamed:
        assert await streamed.get_output() == result.output
    events: list[Any] = []
    async with temporal_agent.run_stream_events('hi', deps=AnyDeps()) as stream:
        events.extend([event async for event in stream])
    assert events[-1].event_kind == 'agent_run_result'
    async with temporal_agent.iter('hi', deps=AnyDeps()) as agent_run:
        async for _ in agent_run:
            pass
    assert agent_run.result is not None
    assert agent_run.result.output == result.output
    sync_result = await anyio.to_thread.run_sync(lambda: temporal_agent.run_sync('hi', deps=AnyDeps()))
    assert sync_result.output == result.output
    # Any model instance and run-time toolsets are fine outside a workflow.
    with temporal_agent.override(model=TestModel(custom_output_text='overridden')):
        assert (await temporal_agent.run('hi', deps=AnyDeps())).output == 'overridden'
    other = await temporal_agent.run('hi', deps=AnyDeps(), model=TestModel(custom_output_text='other'))
    assert other.output == 'other'
    with_toolset = await temporal_agent.run(
        'hi', deps=AnyDeps(), toolsets=[extra_toolset], event_stream_handler=_handler
    )
    assert with_toolset.output == result.output


def test_construction_errors() -> None:
    with pytest.raises(UserError, match='needs a unique, stable `name`'):
        TemporalAgent(Agent(TestModel()))
    with pytest.raises(UserError, match='needs a model instance'):
        TemporalAgent(Agent(name='no_model'))
    with pytest.raises(UserError, match="'default' in `models` is reserved"):
        TemporalAgent(Agent(TestModel(), name='reserved'), models={'default': TestModel()})
    with pytest.raises(UserError, match='has no `id`'):
        TemporalAgent(Agent(TestModel(), name='no_id', toolsets=[FunctionToolset()]))
    with pytest.raises(UserError, match='unique `id=`'):
        TemporalAgent(Agent(TestModel(), name='dup', toolsets=[FunctionToolset(id='t'), FunctionToolset(id='t')]))

    def sync_tool() -> str:
        return 'x'

    async def async_tool() -> str:
        return 'x'

    with pytest.raises(UserError, match="Tool 'sync_tool' of toolset 'tools'.*Make the tool function `async`"):
        TemporalAgent(
            Agent(TestModel(), name='sync_false', toolsets=[FunctionToolset([sync_tool], id='tools')]),
            tool_activity_config={'tools': {'sync_tool': False}},
        )
    # An async tool may run in the workflow.
    TemporalAgent(
        Agent(TestModel(), name='async_false', toolsets=[FunctionToolset([async_tool], id='tools')]),
        tool_activity_config={'tools': {'async_tool': False}},
    )
    agent = TemporalAgent(Agent(TestModel(), name='fixed'))
    with pytest.raises(UserError, match='cannot change'):
        agent.name = 'other'
    # The model given only through `models=` is the default.
    registered = TestModel(custom_output_text='registered')
    only_models = TemporalAgent(Agent(name='only_models'), models={'main': registered})
    assert isinstance(only_models.model, WrapperModel)
    assert only_models.model.wrapped is registered
