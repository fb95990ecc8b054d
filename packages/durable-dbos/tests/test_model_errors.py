"""Model errors on DBOS: with model-step retries allowed, a permanent error fails the run after one attempt."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable

import httpx
import pytest
from pydantic_ai import Agent, RunContext
from pydantic_ai.exceptions import ModelHTTPError, UserError
from pydantic_ai.messages import AgentStreamEvent, ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from durable_dbos import DBOSAgent, DBOSModel, StepConfig

pytestmark = pytest.mark.anyio

RETRIES = StepConfig(retries_allowed=True, max_attempts=5, interval_seconds=0.05, backoff_rate=1.0)


def _http_error(status: int, headers: dict[str, str] | None = None) -> ModelHTTPError:
    # As a provider model raises it: from the SDK's error, which holds the HTTP response (and its headers).
    request = httpx.Request('POST', 'https://provider.test/v1/chat')
    error = ModelHTTPError(status, 'scripted', {'error': f'status {status}'})
    error.__cause__ = httpx.HTTPStatusError(
        f'status {status}', request=request, response=httpx.Response(status, headers=headers, request=request)
    )
    return error


class FailingModel:
    """A model that fails with `status` (on every attempt, or on the first only) and counts the attempts."""

    def __init__(self, status: int, headers: dict[str, str] | None = None, *, every_attempt: bool) -> None:
        self.attempts = 0
        self.model = FunctionModel(self._answer)
        self._status = status
        self._headers = headers
        self._every_attempt = every_attempt

    def _answer(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.attempts += 1
        if self._every_attempt or self.attempts == 1:
            raise _http_error(self._status, self._headers)
        return ModelResponse(parts=[TextPart(f'answered after {self.attempts} attempts')])


@pytest.mark.parametrize('status', [400, 401])
async def test_a_permanent_model_error_fails_the_run_after_one_attempt(
    agent_name: str, dbos_launch: Callable[[], None], status: int
) -> None:
    failing = FailingModel(status, every_attempt=True)
    dbos_agent = DBOSAgent(Agent(failing.model, name=agent_name), model_step_config=RETRIES)
    dbos_launch()
    with pytest.raises(ModelHTTPError) as raised:
        await dbos_agent.run('hi')
    assert raised.value.status_code == status
    assert failing.attempts == 1


@pytest.mark.parametrize(('status', 'headers'), [(429, {'retry-after': '0'}), (503, None)])
async def test_rate_limits_and_server_errors_are_retried(
    agent_name: str, dbos_launch: Callable[[], None], status: int, headers: dict[str, str] | None
) -> None:
    failing = FailingModel(status, headers, every_attempt=False)
    dbos_agent = DBOSAgent(Agent(failing.model, name=agent_name), model_step_config=RETRIES)
    dbos_launch()
    assert (await dbos_agent.run('hi')).output == 'answered after 2 attempts'


async def test_no_non_retryable_model_errors_leaves_every_error_to_the_step_config(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    failing = FailingModel(400, every_attempt=False)
    dbos_agent = DBOSAgent(
        Agent(failing.model, name=agent_name), model_step_config=RETRIES, non_retryable_model_errors=()
    )
    dbos_launch()
    assert (await dbos_agent.run('hi')).output == 'answered after 2 attempts'


async def test_a_streamed_request_is_classified_too(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    attempts: list[int] = []

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        attempts.append(1)
        if attempts:  # always: the stream fails before its first chunk
            raise _http_error(401)
        yield ''  # pragma: no cover

    async def handler(ctx: RunContext[None], events: AsyncIterable[AgentStreamEvent]) -> None:
        async for _ in events:
            pass

    dbos_agent = DBOSAgent(
        Agent(FunctionModel(stream_function=stream), name=agent_name),
        model_step_config=RETRIES,
        event_stream_handler=handler,
    )
    dbos_launch()
    with pytest.raises(ModelHTTPError):
        await dbos_agent.run('hi')
    assert len(attempts) == 1


def test_a_bare_exception_class_is_refused(agent_name: str) -> None:
    with pytest.raises(UserError, match=r'`non_retryable_model_errors` must be a sequence of exception classes'):
        DBOSModel(
            FunctionModel(lambda messages, info: ModelResponse(parts=[])),
            step_name_prefix=agent_name,
            non_retryable_model_errors=ModelHTTPError,  # pyright: ignore[reportArgumentType]
        )
