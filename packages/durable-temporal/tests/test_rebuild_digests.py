"""Model activities check that the conversation and deps they rebuilt are the ones the workflow meant.

A model activity sent a message delta rebuilds the reused messages from its worker's cache or the workflow history,
and an activity sent deps by digest finds them the same way; the workflow's counter of model activities and its
digests say which. Here activities receive inputs that do not match what they rebuild (as a bug or an edited history
would make them): they fail at once, without retry, naming the workflow. An input without a digest, as a worker of an
older release schedules it, is accepted. The rebuild on a second worker process after a kill is in `test_crash.py`.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from core_helpers import WORKFLOW_TIMEOUT
from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.function import AgentInfo, FunctionModel
from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

from durable_temporal import TemporalAgent
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio

SEEN: list[int] = []
"""How many messages the model saw, per request."""

DIGEST_KEY = '__durable_deps_digest__'
"""Where the serialized run context names deps sent earlier (wire format)."""

REQUEST_ACTIVITY = 'agent__digests__model_request'


class BigDeps(BaseModel):
    """Deps over the inline limit, so that they are named by digest."""

    blob: str


def count_messages(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    SEEN.append(len(messages))
    return ModelResponse(parts=[TextPart(f'saw {len(messages)}')])


digest_agent = TemporalAgent(Agent(FunctionModel(count_messages), name='digests', deps_type=BigDeps))


def _request(prompt: str, *, context: dict[str, Any] | None = None, **delta: Any) -> dict[str, Any]:
    """A model activity's argument, field by field as a worker schedules it."""
    return {
        'messages': [ModelRequest(parts=[UserPromptPart(prompt)])],
        'model_settings': None,
        'model_request_parameters': ModelRequestParameters(),
        'serialized_run_context': context or {},
        **delta,
    }


@workflow.defn
class InconsistentInputsWorkflow:
    """Schedules the agent's model activity with hand-made inputs; returns what each activity did."""

    @workflow.run
    async def run(self, case: str) -> list[str]:
        if case == 'messages':
            requests = [
                (_request('hello', history_index=0), None),
                # As an older worker sends it: a delta without a digest.
                (_request('again', history_index=1, history_base=0, history_keep=2), None),
                (_request('wrong', history_index=2, history_base=1, history_keep=4, history_digest='0' * 64), None),
            ]
        else:
            named = {DIGEST_KEY: 'f' * 32}
            deps = BigDeps(blob='x' * 5000)
            requests = [(_request('carries deps', context=named), deps), (_request('names deps', context=named), None)]
        outcomes: list[str] = []
        for params, deps in requests:
            try:
                response = await workflow.execute_activity(
                    REQUEST_ACTIVITY,
                    args=[params, deps],
                    result_type=ModelResponse,
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(milliseconds=100)),
                )
            except ActivityError as error:
                cause = error.cause
                if not isinstance(cause, ApplicationError):
                    raise
                retried = error.retry_state != RetryState.NON_RETRYABLE_FAILURE
                outcomes.append(f'{cause.type} (retried: {retried}): {cause.message}')
                break
            [part] = response.parts
            assert isinstance(part, TextPart)
            outcomes.append(part.content)
        return outcomes


async def _run(client: Client, task_queue: str, case: str) -> tuple[str, list[str]]:
    workflow_id = f'digests-{case}-{uuid.uuid4()}'
    async with agent_worker(
        client, workflows=[InconsistentInputsWorkflow], agents=[digest_agent], task_queue=task_queue
    ):
        outcomes = await client.execute_workflow(
            InconsistentInputsWorkflow.run,
            case,
            id=workflow_id,
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
    return workflow_id, outcomes


async def test_reused_messages_that_do_not_match_the_digest_fail_without_retry(client: Client, task_queue: str):
    SEEN.clear()
    workflow_id, outcomes = await _run(client, task_queue, 'messages')
    assert outcomes[:2] == ['saw 1', 'saw 3']
    assert outcomes[2].startswith('DurableTemporalHistoryMismatch (retried: False): The model request of workflow ')
    assert repr(workflow_id) in outcomes[2]
    assert 'reuses 4 messages of model activity #1' in outcomes[2]
    # The model never saw the third request.
    assert SEEN == [1, 3]


async def test_deps_found_in_the_history_that_do_not_match_their_digest_fail_without_retry(
    client: Client, task_queue: str
):
    SEEN.clear()
    workflow_id, outcomes = await _run(client, task_queue, 'deps')
    assert outcomes[0] == 'saw 1'
    assert outcomes[1].startswith(
        'DurableTemporalDepsMismatch (retried: False): The deps of this activity of workflow '
    )
    assert repr(workflow_id) in outcomes[1]
    assert SEEN == [1]
