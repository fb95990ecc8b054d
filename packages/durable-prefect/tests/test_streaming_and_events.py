"""Streamed model requests are consumed inside their task; other events are handled in `Handle Stream Event` tasks."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import pytest
from prefect import flow
from pydantic_ai import Agent, RunContext
from pydantic_ai.direct import model_request
from pydantic_ai.messages import AgentStreamEvent, ModelMessage, ModelRequest
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel

from durable_kernel import HAS_RESPONSE_ORIGIN
from durable_prefect import PrefectAgent, PrefectModel

from ._helpers import flow_runs_named, task_runs_of

pytestmark = [pytest.mark.anyio]


class Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []

    async def __call__(self, ctx: RunContext[Any], stream: AsyncIterable[AgentStreamEvent]) -> None:
        async for event in stream:
            self.events.append(type(event).__name__)


def _agent(name: str) -> Agent[None, str]:
    agent = Agent(TestModel(), name=name)

    @agent.tool_plain
    def ping() -> str:
        return 'pong'

    return agent


async def _names(flow_name: str, expected: int) -> list[str]:
    [flow_run] = await flow_runs_named(flow_name)
    return [run.name.rsplit('-', 1)[0] for run in await task_runs_of([flow_run.id], expected=expected)]


@pytest.mark.usefixtures('prefect_server')
async def test_event_stream_handler_gets_model_events_in_the_model_task_and_tool_events_in_tasks() -> None:
    recorder = Recorder()
    prefect_agent = PrefectAgent(_agent('events'), event_stream_handler=recorder)
    result = await prefect_agent.run('go')
    assert result.output == '{"ping":"pong"}'
    plain = Recorder()
    await _agent('plain-events').run('go', event_stream_handler=plain)
    # The handler sees the same events as with the plain agent: model events live inside the streaming model
    # task, tool events each in its own `Handle Stream Event` task.
    assert recorder.events == plain.events
    assert 'PartStartEvent' in recorder.events
    assert 'FunctionToolResultEvent' in recorder.events
    names = await _names('events Run', expected=5)
    assert names.count('Model Request (Streaming): test') == 2
    assert 'Call Tool: ping' in names
    assert 'Handle Stream Event' in names
    assert 'Model Request: test' not in names


@pytest.mark.usefixtures('prefect_server')
async def test_run_time_event_stream_handler_is_used_in_tasks() -> None:
    recorder = Recorder()
    prefect_agent = PrefectAgent(_agent('run-time-events'), event_stream_handler_task_config={'retries': 1})
    await prefect_agent.run('go', event_stream_handler=recorder)
    assert 'PartStartEvent' in recorder.events
    assert 'FunctionToolResultEvent' in recorder.events
    assert 'Handle Stream Event' in await _names('run-time-events Run', expected=5)


async def test_prefect_model_outside_a_flow_behaves_like_the_wrapped_model() -> None:
    model = PrefectModel(TestModel(custom_output_text='plain'))
    response = await model_request(model, [ModelRequest.user_text_prompt('hi')])
    assert response.parts[0].content == 'plain'  # pyright: ignore[reportAttributeAccessIssue,reportUnknownMemberType]
    recorder = Recorder()
    prefect_agent = PrefectAgent(_agent('stream-outside-flow'), event_stream_handler=recorder)
    async with prefect_agent.run_stream('go') as streamed:
        assert await streamed.get_output() == '{"ping":"pong"}'
    assert 'FunctionToolResultEvent' in recorder.events


@pytest.mark.usefixtures('prefect_server')
async def test_a_node_streamed_in_flow_code_without_a_handler_yields_the_text() -> None:
    """`agent.iter()` with `node.stream()` in a flow: the task consumed the live stream, the caller sees the text."""
    prefect_agent = PrefectAgent(Agent(TestModel(custom_output_text='streamed text'), name='iter-stream'))

    @flow(name='iter-stream-caller')
    async def iterates() -> list[str]:
        chunks: list[str] = []
        async with prefect_agent.iter('go') as run:
            async for node in run:
                if Agent.is_model_request_node(node):
                    async with node.stream(run.ctx) as stream:
                        chunks.extend([chunk async for chunk in stream.stream_text(debounce_by=None)])
        return chunks

    assert ''.join(await iterates()) == 'streamed text'
    assert await _names('iter-stream-caller', expected=1) == ['Model Request (Streaming): test']


class _FailsMidStreamOnce:
    """Streams `a0 a1 ` and fails, once; then streams `b0 b1 `."""

    def __init__(self) -> None:
        self.calls = 0

    async def stream(self, messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        self.calls += 1
        prefix = 'a' if self.calls == 1 else 'b'
        for index in range(2):
            yield f'{prefix}{index} '
        if self.calls == 1:
            raise RuntimeError('the stream broke')


@pytest.mark.skipif(not HAS_RESPONSE_ORIGIN, reason='pydantic-ai < 2.78 stamps no origin on model-stream events')
@pytest.mark.usefixtures('prefect_server')
async def test_a_retried_model_task_streams_under_its_next_execution_attempt() -> None:
    """pydantic-ai 2.78's `origin`: the plain agent's, with the task run's attempt as `execution_attempt`."""
    events: list[Any] = []

    async def record(ctx: RunContext[Any], stream: AsyncIterable[AgentStreamEvent]) -> None:
        async for event in stream:
            events.append(event)

    model = _FailsMidStreamOnce()
    agent = Agent(FunctionModel(stream_function=model.stream), name='origin-retried')
    prefect_agent = PrefectAgent(
        agent, event_stream_handler=record, model_task_config={'retries': 1, 'retry_delay_seconds': 0}
    )
    result = await prefect_agent.run('go')
    assert result.output == 'b0 b1 '
    assert model.calls == 2
    origins = [(event.origin.run_step, event.origin.attempt, event.origin.execution_attempt) for event in events]
    assert {event.origin.run_id for event in events} == {result.run_id}
    first = [origin for origin in origins if origin[2] == 1]
    again = [origin for origin in origins if origin[2] == 2]
    assert first
    assert again
    assert len(first) + len(again) == len(origins)
    assert set(first) == {(1, 1, 1)}
    assert set(again) == {(1, 1, 2)}
    assert events[-1].origin.supersedes(events[0].origin)
