"""Model calls other than requests (compaction; on pydantic-ai 2.x, cancelling a suspended response) are tasks too;
pydantic-ai 2.x's batch API, which no task can hold, is refused inside a flow."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from prefect import flow
from pydantic_ai import Agent
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models import ModelRequestContext, ModelRequestParameters
from pydantic_ai.models.function import AgentInfo, FunctionModel

from durable_kernel import PYDANTIC_AI_2
from durable_prefect import PrefectAgent, PrefectModel

from ._helpers import flow_runs_named, task_runs_of

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures('prefect_server')]


def _answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart('answer')])  # pragma: no cover


class CompactingModel(FunctionModel):
    """A model whose provider compacts conversations and cancels suspended responses (and counts both)."""

    def __init__(self) -> None:
        super().__init__(_answer, model_name='compacting')
        self.compactions: list[int] = []
        self.cancelled: list[str] = []

    async def compact_messages(
        self, request_context: ModelRequestContext, *, instructions: str | None = None
    ) -> ModelResponse:
        self.compactions.append(len(request_context.messages))
        return ModelResponse(parts=[TextPart(f'summary of {len(request_context.messages)} ({instructions})')])

    async def cancel_suspended_response(self, response: ModelResponse) -> None:
        self.cancelled.append(response.provider_response_id or '')


def _request_context(model: PrefectModel, prompt: str) -> ModelRequestContext:
    return ModelRequestContext(
        model=model,
        messages=[ModelRequest(parts=[UserPromptPart(prompt)])],
        model_settings=None,
        model_request_parameters=ModelRequestParameters(),
    )


async def _task_names(flow_name: str, expected: int) -> list[str]:
    runs = await flow_runs_named(flow_name)
    return [run.name.rsplit('-', 1)[0] for run in await task_runs_of([run.id for run in runs], expected=expected)]


async def test_compaction_is_a_task_reused_by_a_retried_flow_run() -> None:
    wrapped = CompactingModel()
    model = PrefectModel(wrapped)
    attempts: list[str] = []

    @flow(name='compaction', retries=1, retry_delay_seconds=0)
    async def compaction() -> str:
        response = await model.compact_messages(_request_context(model, 'long story'), instructions='short')
        text = response.parts[0]
        assert isinstance(text, TextPart)
        attempts.append(text.content)
        if len(attempts) == 1:
            raise RuntimeError('the flow fails after the compaction')
        return text.content

    assert await compaction() == 'summary of 1 (short)'
    assert wrapped.compactions == [1]  # the retried flow run reused the completed task
    assert await _task_names('compaction', expected=2) == ['Compact Messages: compacting'] * 2


async def test_compaction_outside_a_flow_calls_the_model_directly() -> None:
    wrapped = CompactingModel()
    model = PrefectModel(wrapped)
    response = await model.compact_messages(_request_context(model, 'long story'))
    assert response.parts == [TextPart('summary of 1 (None)')]
    assert wrapped.compactions == [1]


@pytest.mark.skipif(not PYDANTIC_AI_2, reason='suspended responses exist on pydantic-ai 2.x only')
async def test_cancelling_a_suspended_response_is_a_task() -> None:
    wrapped = CompactingModel()
    model: Any = PrefectModel(wrapped)  # `Any`: the locked pydantic-ai 1.107's `Model` has no such method

    @flow(name='cancel-suspended')
    async def cancel() -> None:
        await model.cancel_suspended_response(ModelResponse(parts=[], provider_response_id='job-1'))

    await cancel()
    assert wrapped.cancelled == ['job-1']
    assert await _task_names('cancel-suspended', expected=1) == ['Model Cancel Suspended Response: compacting']


@pytest.mark.skipif(
    not hasattr(importlib.import_module('pydantic_ai.capabilities'), 'BatchModelRequests'),
    reason='the installed pydantic-ai has no batch API, `BatchModelRequests` (1.107 and 2.33 lack it, 2.68+ have it)',
)
async def test_batch_requests_are_refused_inside_a_flow() -> None:
    capabilities: Any = importlib.import_module('pydantic_ai.capabilities')
    agent = Agent(CompactingModel(), name='batched', capabilities=[capabilities.BatchModelRequests()])
    with pytest.raises(UserError, match='`batch_encode` of the batch API cannot run inside a Prefect flow'):
        await PrefectAgent(agent).run('go')
