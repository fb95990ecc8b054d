"""Model errors on Prefect: with model-task retries allowed, a permanent error fails the run after one attempt."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic_ai import Agent
from pydantic_ai.exceptions import ModelHTTPError, UserError
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from durable_prefect import PrefectAgent, PrefectModel, TaskConfig

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures('prefect_server')]

RETRIES: TaskConfig = {'retries': 4, 'retry_delay_seconds': 0}


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
async def test_a_permanent_model_error_fails_the_run_after_one_attempt(status: int) -> None:
    failing = FailingModel(status, every_attempt=True)
    agent = PrefectAgent(Agent(failing.model, name=f'model-error-{status}'), model_task_config=RETRIES)
    with pytest.raises(ModelHTTPError) as raised:
        await agent.run('hi')
    assert raised.value.status_code == status
    assert failing.attempts == 1


@pytest.mark.parametrize(('status', 'headers'), [(429, {'retry-after': '0'}), (503, None)])
async def test_rate_limits_and_server_errors_are_retried(status: int, headers: dict[str, str] | None) -> None:
    failing = FailingModel(status, headers, every_attempt=False)
    agent = PrefectAgent(Agent(failing.model, name=f'model-error-{status}'), model_task_config=RETRIES)
    assert (await agent.run('hi')).output == 'answered after 2 attempts'


async def test_no_non_retryable_model_errors_leaves_every_error_to_the_task_config() -> None:
    failing = FailingModel(400, every_attempt=False)
    agent = PrefectAgent(
        Agent(failing.model, name='model-error-all-retried'), model_task_config=RETRIES, non_retryable_model_errors=()
    )
    assert (await agent.run('hi')).output == 'answered after 2 attempts'


async def test_the_configs_own_retry_condition_still_decides_the_other_errors() -> None:
    asked: list[str] = []

    def never(task: Any, task_run: Any, state: Any) -> bool:
        asked.append(str(state.message))
        return False

    permanent = FailingModel(401, every_attempt=True)
    transient = FailingModel(503, every_attempt=False)
    config: TaskConfig = {**RETRIES, 'retry_condition_fn': never}
    for name, failing in (('permanent', permanent), ('transient', transient)):
        agent = PrefectAgent(Agent(failing.model, name=f'model-error-condition-{name}'), model_task_config=config)
        with pytest.raises(ModelHTTPError):
            await agent.run('hi')
    assert (permanent.attempts, transient.attempts) == (1, 1)
    # Only the transient error reached the configured condition: the permanent one was refused before it.
    assert len(asked) == 1
    assert 'status_code: 503' in asked[0]
    assert 'retry_condition_fn' not in RETRIES


def test_a_bare_exception_class_is_refused() -> None:
    with pytest.raises(UserError, match=r'`non_retryable_model_errors` must be a sequence of exception classes'):
        PrefectModel(
            FunctionModel(lambda messages, info: ModelResponse(parts=[])),
            non_retryable_model_errors=ModelHTTPError,  # pyright: ignore[reportArgumentType]
        )
