from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import pytest
from pydantic_ai import RunContext
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import AgentStreamEvent, ModelMessage, ModelRequest, PartStartEvent, TextPart, UserPromptPart
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RunUsage

from durable_kernel import HAS_RESPONSE_ORIGIN, consume_model_stream, unit_execution_attempt

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return 'asyncio'


async def stream_words(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
    for word in ('durable ', 'agents'):
        yield word


MODEL = FunctionModel(stream_function=stream_words)
MESSAGES: list[ModelMessage] = [ModelRequest(parts=[UserPromptPart('hi')])]


async def test_handler_sees_the_live_stream_and_the_response_is_complete():
    seen: list[AgentStreamEvent] = []

    async def handler(ctx: RunContext[Any], events: AsyncIterable[Any]) -> None:
        async for event in events:
            seen.append(event)
            break  # a handler may stop early: the rest must still be read

    ctx = RunContext(deps=None, model=MODEL, usage=RunUsage())
    response = await consume_model_stream(MODEL, MESSAGES, None, ModelRequestParameters(), ctx, handler, engine='Test')
    assert response.parts == [TextPart('durable agents')]
    assert len(seen) == 1
    assert isinstance(seen[0], PartStartEvent)


async def test_without_handler_the_stream_is_read_to_the_end():
    response = await consume_model_stream(MODEL, MESSAGES, None, ModelRequestParameters(), None, None, engine='Test')
    assert response.parts == [TextPart('durable agents')]


async def test_a_handler_without_run_context_is_a_user_error():
    async def handler(ctx: RunContext[Any], events: AsyncIterable[Any]) -> None:
        raise AssertionError('not called')

    with pytest.raises(UserError, match=r'A Test model with an event stream handler needs the run context.*agent\.run'):
        await consume_model_stream(MODEL, MESSAGES, None, ModelRequestParameters(), None, handler, engine='Test')


needs_origin = pytest.mark.skipif(not HAS_RESPONSE_ORIGIN, reason='pydantic-ai < 2.78 stamps no origin on events')


def _run_context(run_id: str | None = 'run-1', run_step: int = 3) -> RunContext[Any]:
    return RunContext(deps=None, model=MODEL, usage=RunUsage(), run_id=run_id, run_step=run_step)


async def _origins(ctx: RunContext[Any], **kwargs: Any) -> list[Any]:
    seen: list[Any] = []

    async def handler(ctx: RunContext[Any], events: AsyncIterable[Any]) -> None:
        async for event in events:
            seen.append(event)

    response = await consume_model_stream(
        MODEL, MESSAGES, None, ModelRequestParameters(), ctx, handler, engine='Test', **kwargs
    )
    assert response.parts == [TextPart('durable agents')]
    assert seen
    return [getattr(event, 'origin', None) for event in seen]


@needs_origin
async def test_events_carry_the_origin_of_the_request_step_and_the_unit_execution():
    from pydantic_ai.messages import ModelResponseOrigin

    origins = await _origins(_run_context(), attempt=2, execution_attempt=3)
    assert set(origins) == {ModelResponseOrigin(run_id='run-1', run_step=3, attempt=2, execution_attempt=3)}


@needs_origin
async def test_the_origin_defaults_to_the_ambient_attempt_and_the_declared_execution():
    from pydantic_ai._run_context import set_current_request_attempt  # pyright: ignore
    from pydantic_ai.messages import ModelResponseOrigin

    assert set(await _origins(_run_context())) == {ModelResponseOrigin(run_id='run-1', run_step=3)}
    with set_current_request_attempt(2), unit_execution_attempt(4):
        origins = await _origins(_run_context())
    assert set(origins) == {ModelResponseOrigin(run_id='run-1', run_step=3, attempt=2, execution_attempt=4)}


@needs_origin
async def test_the_origin_matches_the_plain_agents():
    """The events a unit streams carry the origin the plain agent's handler sees for the same request."""
    from pydantic_ai import Agent

    plain: list[Any] = []

    async def record(ctx: RunContext[Any], events: AsyncIterable[Any]) -> None:
        async for event in events:
            plain.append(event)

    result = await Agent(MODEL).run('hi', event_stream_handler=record)
    plain_origins = [event.origin for event in plain if hasattr(event, 'origin')]
    assert plain_origins
    origins = await _origins(_run_context(run_id=result.run_id, run_step=1))
    assert origins == plain_origins


async def test_without_a_run_id_or_origin_support_the_events_are_not_stamped():
    origins = await _origins(_run_context(run_id=None))
    assert origins == [None] * len(origins)
    if not HAS_RESPONSE_ORIGIN:
        assert await _origins(_run_context()) == origins


def test_a_record_made_before_2_60_gives_its_response() -> None:
    """pydantic-ai's own durability recorded `StreamedActivityResult(response=..., events=...)` before 2.60."""
    from dataclasses import dataclass

    from pydantic_ai.messages import ModelResponse

    from durable_kernel import recorded_stream_response

    @dataclass
    class StreamedActivityResult:  # the recorded shape, read by its attributes (the class moved between releases)
        response: ModelResponse
        events: list[Any]

    response = ModelResponse(parts=[TextPart('done')])
    assert recorded_stream_response(response) is response
    assert recorded_stream_response(StreamedActivityResult(response=response, events=[])) is response
    with pytest.raises(TypeError, match="recorded 'str', not a `ModelResponse`"):
        recorded_stream_response('done')
