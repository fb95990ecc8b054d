"""The run keywords pydantic-ai 2.x added, inside a workflow: each is carried into the durable run or refused.

`conversation` and `run_id` are plain data: the loop runs in workflow code with them, and the activities see the
`run_id`. `cancellation_token`, `timeout` and `workspace` cannot be made durable: `run()` refuses them with a
`UserError` naming the keyword, before anything is scheduled. On 1.107 these keywords do not exist.
"""

from __future__ import annotations

import inspect
import uuid
from typing import Any, cast

import pytest
from core_helpers import WORKFLOW_TIMEOUT, activity_names
from pydantic_ai import Agent, RunContext
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from temporalio import workflow
from temporalio.client import Client

from durable_kernel import PYDANTIC_AI_2
from durable_kernel._compat import entry_point_parameters
from durable_temporal import TemporalAgent
from durable_temporal.testing import agent_worker

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not PYDANTIC_AI_2, reason='pydantic-ai 1.107 has none of these run keywords'),
]

RUN_IDS_IN_ACTIVITIES: list[str | None] = []

RUN_PARAMETERS = entry_point_parameters('run')
"""The installed `Agent.run`'s keywords: 2.33 has `run_id` and `cancellation_token`, not yet `conversation`, `timeout`
or `workspace` (the plain agent refuses those with a `TypeError`, as ours does)."""


def _needs_run_keywords(*keywords: str) -> None:
    missing = [keyword for keyword in keywords if keyword not in RUN_PARAMETERS]
    if missing:
        named = ', '.join(f'`{keyword}=`' for keyword in missing)
        pytest.skip(f"the installed pydantic-ai's `Agent.run` has no {named} (a later 2.x release added it)")


def keyword_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    returned = [
        part.content
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]
    if not returned:
        return ModelResponse(parts=[ToolCallPart('whoami', {})])
    return ModelResponse(parts=[TextPart(f'{len(messages)} messages, tool saw {returned[-1]}')])


keyword_agent = Agent(FunctionModel(keyword_model), name='keywords')


@keyword_agent.tool
async def whoami(ctx: RunContext[None]) -> str:
    RUN_IDS_IN_ACTIVITIES.append(ctx.run_id)
    return f'run {ctx.run_id}'


temporal_keyword_agent = TemporalAgent(keyword_agent)


def _refused_value(keyword: str) -> Any:
    import pydantic_ai

    values: dict[str, Any] = {
        'cancellation_token': cast(Any, pydantic_ai).CancellationToken(),
        'timeout': 30.0,
        'workspace': 'new',
    }
    return values[keyword]


@workflow.defn
class KeywordWorkflow:
    @workflow.run
    async def run(self, case: str) -> str:
        # `Any`: the keywords are not in 1.107's signatures, which the type checker sees.
        agent = cast(Any, temporal_keyword_agent)
        if case == 'carried':
            import pydantic_ai

            earlier = [ModelRequest.user_text_prompt('earlier'), ModelResponse(parts=[TextPart('noted')])]
            conversation = cast(Any, pydantic_ai).Conversation(messages=earlier, conversation_id='conversation-1')
            result = await agent.run('now', run_id='run-1', conversation=conversation)
            return f'{result.output} | {result.run_id} | {result.conversation_id}'
        if case.startswith('override_'):
            keyword = case.removeprefix('override_')
            value = 'new' if keyword == 'workspace' else list(keyword_agent.root_capability.capabilities)
            try:
                with agent.override(**{keyword: value}):
                    pass
            except UserError as error:
                return str(error)
            return 'not refused'
        try:
            await agent.run('now', **{case: _refused_value(case)})
        except UserError as error:
            return str(error)
        return 'not refused'


async def test_conversation_and_run_id_are_carried_into_the_durable_run(client: Client, task_queue: str) -> None:
    _needs_run_keywords('conversation', 'run_id')
    RUN_IDS_IN_ACTIVITIES.clear()
    async with agent_worker(
        client, workflows=[KeywordWorkflow], agents=[temporal_keyword_agent], task_queue=task_queue
    ):
        handle = await client.start_workflow(
            KeywordWorkflow.run,
            'carried',
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        # The model saw the conversation's two messages before the run's own four, and the tool's activity the run id.
        assert await handle.result() == '5 messages, tool saw run run-1 | run-1 | conversation-1'
    assert RUN_IDS_IN_ACTIVITIES == ['run-1']
    assert await activity_names(client, handle) == [
        'agent__keywords__model_request',
        'agent__keywords__toolset__<agent>__call_tool',
        'agent__keywords__model_request',
    ]


@pytest.mark.parametrize(
    ('case', 'why'),
    [
        ('cancellation_token', 'cannot cross into activities'),
        ('timeout', "the workflow's `execution_timeout`"),
        ('workspace', 'outside any activity'),
    ],
)
async def test_keywords_that_cannot_be_durable_are_refused(client: Client, task_queue: str, case: str, why: str):
    _needs_run_keywords(case)
    async with agent_worker(
        client, workflows=[KeywordWorkflow], agents=[temporal_keyword_agent], task_queue=task_queue
    ):
        handle = await client.start_workflow(
            KeywordWorkflow.run, case, id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
        )
        message = await handle.result()
    assert message.startswith(f'`{case}=` cannot be passed to `run()` inside a Temporal workflow: ')
    assert why in message
    # Refused before the run started: nothing was scheduled.
    assert await activity_names(client, handle) == []


@pytest.mark.parametrize('keyword', ['workspace', 'capabilities'])
async def test_workspace_and_capabilities_cannot_be_overridden_in_a_workflow(
    client: Client, task_queue: str, keyword: str
) -> None:
    if keyword not in inspect.signature(Agent.override).parameters:
        pytest.skip(f'`override({keyword}=...)` exists from a later pydantic-ai 2.x')
    async with agent_worker(
        client, workflows=[KeywordWorkflow], agents=[temporal_keyword_agent], task_queue=task_queue
    ):
        message = await client.execute_workflow(
            KeywordWorkflow.run,
            f'override_{keyword}',
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
    assert message.startswith(f'`{keyword}` cannot be overridden inside a Temporal workflow')
