"""Model errors: a permanent one fails the workflow after one attempt, a transient one is retried (after `Retry-After`).

The model activities run with an unlimited retry policy (Temporal's default attempts): before the classification,
a 400 or a 401 kept the workflow running with one attempt after another.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import httpx
import pytest
from pydantic_ai import Agent
from pydantic_ai.exceptions import ModelHTTPError, UserError
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from temporalio import workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityConfig

from durable_temporal import TemporalAgent
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio

ATTEMPTS: dict[str, list[float]] = {}
"""The times (monotonic) at which the model was asked, by prompt: the model runs in activities, in this process."""


def _http_error(status: int, headers: dict[str, str] | None = None) -> ModelHTTPError:
    # As a provider model raises it: from the SDK's error, which holds the HTTP response (and its headers).
    request = httpx.Request('POST', 'https://provider.test/v1/chat')
    response = httpx.Response(status, headers=headers, request=request)
    error = ModelHTTPError(status, 'scripted', {'error': f'status {status}'})
    error.__cause__ = httpx.HTTPStatusError(f'status {status}', request=request, response=response)
    return error


FAILURES: dict[str, tuple[int, dict[str, str] | None]] = {
    'bad-request': (400, None),
    'wrong-api-key': (401, None),
    'rate-limited': (429, {'retry-after': '3'}),
    'rate-limited-for-an-hour': (429, {'retry-after': '3600'}),
    'unavailable': (503, None),
}
"""The status (and headers) the model fails with at each prompt: on its first attempt, and for 400 and 401 on every
attempt unless the agent retries every model error."""


def scripted(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    request = messages[-1]
    assert isinstance(request, ModelRequest)
    prompt = next(part.content for part in request.parts if isinstance(part, UserPromptPart))
    assert isinstance(prompt, str)
    attempts = ATTEMPTS.setdefault(prompt, [])
    attempts.append(time.monotonic())
    status, headers = FAILURES[prompt.removeprefix('all-retried:')]
    if len(attempts) == 1 or (status in (400, 401) and not prompt.startswith('all-retried:')):
        raise _http_error(status, headers)
    return ModelResponse(parts=[TextPart(f'answered after {len(attempts)} attempts')])


# Unlimited attempts, as Temporal's default policy, but quick ones: a 0.1 s backoff, never more than 5 s apart.
RETRY_FAST = ActivityConfig(
    retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_interval=timedelta(seconds=5))
)

model_error_agent = TemporalAgent(Agent(FunctionModel(scripted), name='model_errors'), model_activity_config=RETRY_FAST)
all_retried_agent = TemporalAgent(
    Agent(FunctionModel(scripted), name='model_errors_all_retried'),
    model_activity_config=RETRY_FAST,
    non_retryable_model_errors=(),
)


@workflow.defn
class ModelErrorWorkflow:
    @workflow.run
    async def run(self, prompt: str) -> str:
        agent = all_retried_agent if prompt.startswith('all-retried:') else model_error_agent
        return (await agent.run(prompt)).output


async def _run(client: Client, task_queue: str, prompt: str) -> str:
    ATTEMPTS.pop(prompt, None)
    return await client.execute_workflow(
        ModelErrorWorkflow.run,
        prompt,
        id=f'{prompt}-{uuid.uuid4()}',
        task_queue=task_queue,
        # Far below the test's timeout: an error retried for ever fails the test with a timeout, not a hang.
        execution_timeout=timedelta(seconds=60),
    )


@pytest.mark.parametrize('prompt', ['bad-request', 'wrong-api-key'])
async def test_a_permanent_model_error_fails_the_workflow_after_one_attempt(
    client: Client, task_queue: str, prompt: str
) -> None:
    async with agent_worker(client, workflows=[ModelErrorWorkflow], agents=[model_error_agent], task_queue=task_queue):
        with pytest.raises(WorkflowFailureError) as failure:
            await _run(client, task_queue, prompt)
    activity_error = failure.value.cause
    assert isinstance(activity_error, ActivityError)
    cause = activity_error.cause
    assert isinstance(cause, ApplicationError)
    # What the workflow saw before, plus the verdict: the type and message of the model's error.
    assert cause.type == 'ModelHTTPError'
    assert cause.non_retryable
    assert f'status_code: {FAILURES[prompt][0]}' in cause.message
    # The provider SDK's error is still the cause, as when Temporal converted the model's error itself.
    assert isinstance(cause.cause, ApplicationError)
    assert cause.cause.type == 'HTTPStatusError'
    assert len(ATTEMPTS[prompt]) == 1


async def test_a_rate_limit_is_retried_after_the_delay_the_provider_asked_for(client: Client, task_queue: str) -> None:
    async with agent_worker(client, workflows=[ModelErrorWorkflow], agents=[model_error_agent], task_queue=task_queue):
        assert await _run(client, task_queue, 'rate-limited') == 'answered after 2 attempts'
    first, second = ATTEMPTS['rate-limited']
    # `retry-after: 3`, where the retry policy alone would have waited 0.1 s.
    assert second - first >= 2.5


async def test_a_long_retry_after_is_capped_at_the_policys_maximum_interval(client: Client, task_queue: str) -> None:
    async with agent_worker(client, workflows=[ModelErrorWorkflow], agents=[model_error_agent], task_queue=task_queue):
        assert await _run(client, task_queue, 'rate-limited-for-an-hour') == 'answered after 2 attempts'
    first, second = ATTEMPTS['rate-limited-for-an-hour']
    # An hour asked for, 5 s allowed by `maximum_interval`.
    assert 4 <= second - first < 45


async def test_a_server_error_is_retried(client: Client, task_queue: str) -> None:
    async with agent_worker(client, workflows=[ModelErrorWorkflow], agents=[model_error_agent], task_queue=task_queue):
        assert await _run(client, task_queue, 'unavailable') == 'answered after 2 attempts'


async def test_no_non_retryable_model_errors_leaves_every_error_to_the_retry_policy(
    client: Client, task_queue: str
) -> None:
    async with agent_worker(client, workflows=[ModelErrorWorkflow], agents=[all_retried_agent], task_queue=task_queue):
        assert await _run(client, task_queue, 'all-retried:bad-request') == 'answered after 2 attempts'


def test_a_bare_exception_class_is_refused() -> None:
    with pytest.raises(UserError, match=r'`non_retryable_model_errors` must be a sequence of exception classes'):
        TemporalAgent(
            Agent(FunctionModel(scripted), name='model_errors_refused'),
            non_retryable_model_errors=ModelHTTPError,  # pyright: ignore[reportArgumentType]
        )
