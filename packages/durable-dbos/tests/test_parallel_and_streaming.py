from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, Callable
from typing import Any

import anyio
import pytest
from dbos import DBOS, SetWorkflowID
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import (
    AgentStreamEvent,
    FunctionToolResultEvent,
    PartDeltaEvent,
    PartStartEvent,
)
from pydantic_ai.models.test import TestModel

from durable_dbos import DBOSAgent, DBOSParallelExecutionMode
from durable_dbos.testing import workflow_step_names_async

from .helpers import call, respond, scripted_model

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(('mode', 'max_in_flight'), [('parallel_ordered_events', 2), ('sequential', 1)])
async def test_parallel_modes_keep_step_and_event_order(
    agent_name: str, dbos_launch: Callable[[], None], mode: DBOSParallelExecutionMode, max_in_flight: int
) -> None:
    model = scripted_model(respond(call('slow', {}, 'c1'), call('fast', {}, 'c2')), respond('done'))
    agent = Agent(model, name=agent_name)
    in_flight = 0
    seen_max = 0
    finished: list[str] = []
    fast_started, slow_started = anyio.Event(), anyio.Event()

    @agent.tool_plain
    async def slow() -> str:
        nonlocal in_flight, seen_max
        in_flight += 1
        seen_max = max(seen_max, in_flight)
        slow_started.set()
        if mode == 'parallel_ordered_events':
            # Each call waits for the other to start: only concurrent calls get past this (the guard fails the
            # test instead of hanging it).
            with anyio.fail_after(30):
                await fast_started.wait()
        await anyio.sleep(0.1)
        in_flight -= 1
        finished.append('slow')
        return 'slow'

    @agent.tool_plain
    async def fast() -> str:
        nonlocal in_flight, seen_max
        in_flight += 1
        seen_max = max(seen_max, in_flight)
        fast_started.set()
        if mode == 'parallel_ordered_events':
            with anyio.fail_after(30):
                await slow_started.wait()
        in_flight -= 1
        finished.append('fast')
        return 'fast'

    events: list[str] = []

    async def handler(ctx: RunContext[None], stream: AsyncIterable[AgentStreamEvent]) -> None:
        async for event in stream:
            if isinstance(event, FunctionToolResultEvent):
                events.append(event.tool_call_id)

    dbos_agent = DBOSAgent(agent, parallel_execution_mode=mode, event_stream_handler=handler)
    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        await dbos_agent.run('go')

    assert seen_max == max_in_flight
    assert finished == (['fast', 'slow'] if mode == 'parallel_ordered_events' else ['slow', 'fast'])
    # Steps are numbered in call order and events come in call order, whatever finished first.
    assert events == ['c1', 'c2']
    assert await workflow_step_names_async(workflow_id) == [
        f'{agent_name}__model.request_stream',
        f'{agent_name}__toolset__<agent>.call_tool.slow',
        f'{agent_name}__toolset__<agent>.call_tool.fast',
        f'{agent_name}__model.request_stream',
    ]


RUN_EVENTS: list[tuple[str, bool]] = []


async def record_events(ctx: RunContext[Any], stream: AsyncIterable[AgentStreamEvent]) -> None:
    """Module-level (picklable) run-time handler: notes each event kind and whether it ran inside a step."""
    async for event in stream:
        RUN_EVENTS.append((type(event).__name__, DBOS.step_id is not None))


async def test_streamed_model_request_is_one_step_feeding_the_run_handler(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    agent = Agent(TestModel(custom_output_text='streamed text'), name=agent_name)

    @agent.tool_plain
    def ping() -> str:
        return 'pong'

    dbos_agent = DBOSAgent(agent)
    dbos_launch()
    RUN_EVENTS.clear()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        result = await dbos_agent.run('go', event_stream_handler=record_events)

    assert result.output == 'streamed text'
    assert await workflow_step_names_async(workflow_id) == [
        f'{agent_name}__model.request_stream',
        f'{agent_name}__toolset__<agent>.call_tool.ping',
        f'{agent_name}__model.request_stream',
    ]
    # Model events are handled live inside the streaming step; tool events in workflow code.
    in_step = {kind for kind, inside in RUN_EVENTS if inside}
    in_workflow = {kind for kind, inside in RUN_EVENTS if not inside}
    assert {PartStartEvent.__name__, PartDeltaEvent.__name__} <= in_step
    assert {'FunctionToolCallEvent', 'FunctionToolResultEvent'} <= in_workflow
    assert not in_step & {'FunctionToolCallEvent', 'FunctionToolResultEvent'}


async def test_agent_level_handler_consumes_the_live_stream_inside_the_step(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    seen: list[tuple[str, bool]] = []

    async def handler(ctx: RunContext[None], stream: AsyncIterable[AgentStreamEvent]) -> None:
        async for event in stream:
            seen.append((type(event).__name__, DBOS.step_id is not None))

    dbos_agent = DBOSAgent(Agent(TestModel(custom_output_text='live'), name=agent_name), event_stream_handler=handler)
    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        assert (await dbos_agent.run('go')).output == 'live'
    assert await workflow_step_names_async(workflow_id) == [f'{agent_name}__model.request_stream']
    assert ('PartStartEvent', True) in seen
    assert ('PartDeltaEvent', True) in seen


async def test_a_node_streamed_in_workflow_code_without_a_handler_yields_the_text(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    """`agent.iter()` with `node.stream()` in a workflow: the step consumed the live stream, the caller sees the text."""
    dbos_agent = DBOSAgent(Agent(TestModel(custom_output_text='streamed text'), name=agent_name))

    @DBOS.workflow(name=f'{agent_name}_iterates')
    async def iterates() -> list[str]:
        chunks: list[str] = []
        async with dbos_agent.iter('go') as run:
            async for node in run:
                if Agent.is_model_request_node(node):
                    async with node.stream(run.ctx) as stream:
                        chunks.extend([chunk async for chunk in stream.stream_text(debounce_by=None)])
        return chunks

    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        assert ''.join(await iterates()) == 'streamed text'
    assert await workflow_step_names_async(workflow_id) == [f'{agent_name}__model.request_stream']
