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

from durable_kernel import consume_model_stream

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
