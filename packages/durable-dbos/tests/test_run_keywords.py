"""The run keywords pydantic-ai 2.x added: each is carried into the durable run or refused, never dropped."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from dbos import DBOS, SetWorkflowID
from pydantic_ai import Agent
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel

from durable_dbos import DBOSAgent
from durable_kernel import PYDANTIC_AI_2
from durable_kernel._compat import entry_point_parameters

RUN_PARAMETERS = entry_point_parameters('run')
"""The installed line's run keywords: 2.x added them over several releases (2.33 has `run_id` and
`cancellation_token`, not yet `conversation`, `timeout` or `workspace`)."""

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not PYDANTIC_AI_2, reason='these run keywords exist on pydantic-ai 2.x only'),
]


def count_messages(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart(f'{len(messages)} messages')])


async def test_conversation_and_run_id_are_recorded_and_recovered(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    dbos_agent = DBOSAgent(Agent(FunctionModel(count_messages), name=agent_name))
    dbos_launch()
    first: Any = await dbos_agent.run('one')

    workflow_id = str(uuid.uuid4())
    run_id = str(uuid.uuid4())
    # Passed as a dict: pydantic-ai 1.107's signature, which the type checker sees there, has neither keyword. A
    # release without `conversation=` (2.33) continues the conversation from its messages, and still records `run_id`.
    keywords: dict[str, Any] = {
        'run_id': run_id,
        **(
            {'conversation': first.conversation}
            if 'conversation' in RUN_PARAMETERS
            else {'message_history': first.all_messages()}
        ),
    }
    with SetWorkflowID(workflow_id):
        second: Any = await dbos_agent.run('two', **keywords)

    # The conversation's request and response, then this run's request.
    assert second.output == '3 messages'
    assert second.run_id == run_id
    assert second.all_messages()[:2] == first.all_messages()

    # DBOS re-executes the workflow from its recorded inputs, as it does when it recovers one after a crash.
    forked: Any = await (await DBOS.fork_workflow_async(workflow_id, 1)).get_result()
    assert forked.output == '3 messages'
    assert forked.run_id == run_id
    assert forked.all_messages()[:2] == first.all_messages()


def _needs(keyword: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(keyword not in RUN_PARAMETERS, reason=f'the installed pydantic-ai has no `{keyword}=`')


def unrecordable_keywords() -> list[Any]:
    if not PYDANTIC_AI_2:
        return []
    cancellation_token = importlib.import_module('pydantic_ai').CancellationToken()
    return [
        pytest.param('cancellation_token', cancellation_token, 'DBOS.cancel_workflow', id='cancellation_token'),
        pytest.param('timeout', 30.0, 'SetWorkflowTimeout', id='timeout', marks=_needs('timeout')),
        pytest.param('workspace', 'new', 'outside DBOS steps', id='workspace', marks=_needs('workspace')),
    ]


@pytest.mark.parametrize(('keyword', 'value', 'advice'), unrecordable_keywords())
async def test_keywords_a_workflow_cannot_carry_are_refused_before_it_starts(
    keyword: str, value: Any, advice: str, agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    dbos_agent = DBOSAgent(Agent(TestModel(), name=agent_name))

    @DBOS.workflow(name=f'{agent_name}.iterate')
    async def iterate() -> None:
        async with dbos_agent.iter('hi', **{keyword: value}):
            pass  # pragma: no cover - refused on entry

    dbos_launch()
    with pytest.raises(UserError, match=rf'`{keyword}=` cannot be passed to `run` of a `DBOSAgent`: .*{advice}'):
        await dbos_agent.run('hi', **{keyword: value})
    with pytest.raises(UserError, match=rf'`{keyword}=` cannot be passed to `run_sync` of a `DBOSAgent`'):
        dbos_agent.run_sync('hi', **{keyword: value})
    assert await DBOS.list_workflows_async() == []

    with pytest.raises(UserError, match=rf'`{keyword}=` cannot be passed to `iter` of a `DBOSAgent`'):
        await iterate()
