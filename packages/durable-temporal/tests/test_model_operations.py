"""Model operations other than requests talk to the provider too: inside a workflow each runs in its own activity.

`compact_messages` (both lines; a capability such as `OpenAICompaction` calls it before a request) runs in
`model_compact_messages`, and pydantic-ai 2.x's `cancel_suspended_response` (a run abandoning a provider's background
job) in `model_cancel_suspended_response`, named as pydantic-ai 2.x's own `TemporalAgent` names them. Counting tokens ahead of a request
(`model_count_tokens`) has its own tests: `test_count_tokens.py`.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any, cast

import pytest
from core_helpers import WORKFLOW_TIMEOUT, scheduled_activities
from pydantic_ai import Agent, RunContext
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, UserPromptPart
from pydantic_ai.models import ModelRequestContext
from pydantic_ai.models.function import AgentInfo, FunctionModel
from temporalio import activity, workflow
from temporalio.client import Client

from durable_kernel import PYDANTIC_AI_2
from durable_temporal import TemporalAgent
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio

OPERATIONS: list[tuple[str, bool, Any]] = []
"""`(operation, ran in an activity, detail)`, recorded by the model in the worker process."""


def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    if len(messages) == 1:
        first = messages[0]
        assert isinstance(first, ModelRequest)
        prompt = next(part.content for part in first.parts if isinstance(part, UserPromptPart))
        if str(prompt).startswith('compacted'):
            return ModelResponse(parts=[TextPart(str(prompt))])
        return ModelResponse(parts=[ToolCallPart('note', {})])
    return ModelResponse(parts=[TextPart('not compacted')])


class ProviderModel(FunctionModel):
    """A model whose provider can compact a conversation and cancel a background response."""

    async def compact_messages(
        self, request_context: ModelRequestContext, *, instructions: str | None = None
    ) -> ModelResponse:
        OPERATIONS.append(('compact_messages', activity.in_activity(), len(request_context.messages)))
        return ModelResponse(parts=[TextPart(f'summary of {len(request_context.messages)} messages ({instructions})')])

    async def cancel_suspended_response(self, response: ModelResponse) -> None:
        OPERATIONS.append(('cancel_suspended_response', activity.in_activity(), response.provider_response_id))


class CompactLongHistories(AbstractCapability[None]):
    """Replaces a history longer than one message with its compaction, as a compaction capability does."""

    async def before_model_request(
        self, ctx: RunContext[None], request_context: ModelRequestContext
    ) -> ModelRequestContext:
        if len(request_context.messages) < 2:
            return request_context
        summary = await request_context.model.compact_messages(request_context, instructions='be brief')
        return dataclasses.replace(
            request_context, messages=[ModelRequest.user_text_prompt(f'compacted: {summary.text}')]
        )


provider_agent = Agent(ProviderModel(reply), name='provider', capabilities=[CompactLongHistories()])


@provider_agent.tool_plain
async def note() -> str:
    return 'noted'


temporal_provider_agent = TemporalAgent(provider_agent)


@workflow.defn
class ProviderWorkflow:
    @workflow.run
    async def run(self, case: str) -> str:
        if case == 'compact':
            return (await temporal_provider_agent.run('hi')).output
        # What pydantic-ai 2.x does when a run abandons a suspended response: the model cancels its server-side job.
        model = cast(Any, temporal_provider_agent.model)
        await model.cancel_suspended_response(ModelResponse(parts=[], provider_response_id='job-1'))
        return 'cancelled'


async def _run(client: Client, task_queue: str, case: str) -> tuple[str, list[tuple[str, str | None]]]:
    OPERATIONS.clear()
    async with agent_worker(
        client, workflows=[ProviderWorkflow], agents=[temporal_provider_agent], task_queue=task_queue
    ):
        handle = await client.start_workflow(
            ProviderWorkflow.run, case, id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
        )
        output = await handle.result()
    return output, [(a.name, a.summary) for a in await scheduled_activities(client, handle)]


async def test_compact_messages_runs_in_an_activity(client: Client, task_queue: str) -> None:
    output, activities = await _run(client, task_queue, 'compact')
    # The model then got the compacted history: the summary of the request, the tool call and its result.
    assert output == 'compacted: summary of 3 messages (be brief)'
    assert OPERATIONS == [('compact_messages', True, 3)]
    assert activities == [
        ('agent__provider__model_request', 'request model: function:function:reply:'),
        ('agent__provider__toolset__<agent>__call_tool', 'call tool: <agent>:note'),
        ('agent__provider__model_compact_messages', 'compact messages: function:function:reply:'),
        ('agent__provider__model_request', 'request model: function:function:reply:'),
    ]


@pytest.mark.skipif(not PYDANTIC_AI_2, reason='`Model.cancel_suspended_response` was added in pydantic-ai 2.x')
async def test_cancel_suspended_response_runs_in_an_activity(client: Client, task_queue: str) -> None:
    output, activities = await _run(client, task_queue, 'cancel')
    assert output == 'cancelled'
    assert OPERATIONS == [('cancel_suspended_response', True, 'job-1')]
    assert activities == [
        (
            'agent__provider__model_cancel_suspended_response',
            'cancel suspended response: function:function:reply:',
        )
    ]
