"""The model operations besides requests that talk to the provider are DBOS steps inside a workflow."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from dbos import DBOS, SetWorkflowID
from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart
from pydantic_ai.models import ModelRequestContext, ModelRequestParameters
from pydantic_ai.models.test import TestModel
from pydantic_ai.models.wrapper import WrapperModel

from durable_dbos import DBOSModel
from durable_kernel import PYDANTIC_AI_2

pytestmark = pytest.mark.anyio


class ProviderModel(WrapperModel):
    """A model whose provider operations (compaction, cancelling a suspended response) are recorded when called."""

    def __init__(self) -> None:
        super().__init__(TestModel())
        self.compactions: list[str | None] = []
        self.cancelled: list[ModelResponse] = []

    async def compact_messages(
        self, request_context: ModelRequestContext, *, instructions: str | None = None
    ) -> ModelResponse:
        self.compactions.append(instructions)
        return ModelResponse(parts=[TextPart(f'summary of {len(request_context.messages)} messages')])

    async def cancel_suspended_response(self, response: ModelResponse) -> None:
        self.cancelled.append(response)


def request_context(model: DBOSModel) -> ModelRequestContext:
    return ModelRequestContext(
        model=model,
        messages=[ModelRequest.user_text_prompt('hi')],
        model_settings=None,
        model_request_parameters=ModelRequestParameters(),
    )


async def test_compact_messages_is_a_step_whose_response_a_recovered_workflow_reuses(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    provider = ProviderModel()
    model = DBOSModel(provider, step_name_prefix=agent_name)

    @DBOS.workflow(name=f'{agent_name}.compact')
    async def compact() -> ModelResponse:
        return await model.compact_messages(request_context(model), instructions='be brief')

    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        response = await compact()

    assert response.parts == [TextPart('summary of 1 messages')]
    assert provider.compactions == ['be brief']
    steps = await DBOS.list_workflow_steps_async(workflow_id)
    assert [step['function_name'] for step in steps] == [f'{agent_name}__model.compact_messages']
    assert steps[0]['output'] == response

    # Re-executed from after its first step, the workflow gets the recorded response: the provider is not asked again.
    forked = await DBOS.fork_workflow_async(workflow_id, steps[0]['function_id'] + 1)
    assert await forked.get_result() == response
    assert provider.compactions == ['be brief']


async def test_compact_messages_outside_a_workflow_calls_the_model(agent_name: str) -> None:
    provider = ProviderModel()
    model = DBOSModel(provider, step_name_prefix=agent_name)
    response = await model.compact_messages(request_context(model))
    assert response.parts == [TextPart('summary of 1 messages')]
    assert provider.compactions == [None]


@pytest.mark.skipif(not PYDANTIC_AI_2, reason='`cancel_suspended_response` is a pydantic-ai 2.x model operation')
async def test_cancel_suspended_response_is_a_step(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    provider = ProviderModel()
    model = DBOSModel(provider, step_name_prefix=agent_name)
    suspended = ModelResponse(parts=[TextPart('working on it')], provider_response_id='job-1')

    @DBOS.workflow(name=f'{agent_name}.cancel')
    async def cancel() -> None:
        await model.cancel_suspended_response(suspended)

    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        await cancel()

    assert [response.provider_response_id for response in provider.cancelled] == ['job-1']
    assert [step['function_name'] for step in await DBOS.list_workflow_steps_async(workflow_id)] == [
        f'{agent_name}__model.cancel_suspended_response'
    ]
