"""Human in the loop: a tool needing approval ends the agent run with `DeferredToolRequests`; the same workflow
waits for the decision with `DBOS.recv_async` and resumes the agent with `DeferredToolResults`.

This is the documented pattern (see the package README): the approval can come days later, from another process
(`DBOS.send`), and the workflow survives restarts while it waits.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from dbos import DBOS, SetWorkflowID, WorkflowHandleAsync
from pydantic_ai import Agent
from pydantic_ai.agent import AgentRunResult
from pydantic_ai.messages import ToolReturnPart
from pydantic_ai.tools import DeferredToolApprovalResult, DeferredToolRequests, DeferredToolResults

from durable_dbos import DBOSAgent
from durable_dbos.testing import workflow_step_names_async

from .helpers import call, respond, scripted_model

pytestmark = pytest.mark.anyio


async def test_approval_resumes_in_the_same_workflow(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    model = scripted_model(respond(call('refund', {'amount': 30})), respond('refunded'))
    agent = Agent(model, name=agent_name, output_type=[str, DeferredToolRequests])
    refunds: list[int] = []

    @agent.tool_plain(requires_approval=True)
    def refund(amount: int) -> str:
        refunds.append(amount)
        return f'refunded {amount}'

    dbos_agent = DBOSAgent(agent)

    @DBOS.workflow(name=f'{agent_name}.support')
    async def support(prompt: str) -> str:
        result = await dbos_agent.run(prompt)
        while isinstance(result.output, DeferredToolRequests):
            # Publish what needs a decision, then wait (durably) for it.
            await DBOS.set_event_async('pending', [c.tool_call_id for c in result.output.approvals])
            decisions: dict[str, DeferredToolApprovalResult | bool] = await DBOS.recv_async(
                'approvals', timeout_seconds=60
            )
            result = await dbos_agent.run(
                message_history=result.all_messages(),
                deferred_tool_results=DeferredToolResults(approvals=decisions),
            )
        return result.output

    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        handle = await DBOS.start_workflow_async(support, 'refund my order')

    pending: list[str] = await DBOS.get_event_async(workflow_id, 'pending', timeout_seconds=30)
    assert pending == ['c1']
    assert refunds == []  # nothing ran before the approval
    await DBOS.send_async(workflow_id, {'c1': True}, topic='approvals')

    assert await handle.get_result() == 'refunded'
    assert refunds == [30]
    steps = await DBOS.list_workflow_steps_async(workflow_id)
    names = [s['function_name'] for s in steps]
    # recv records its own timeout timer ('DBOS.sleep') after the message.
    assert names == [
        f'{agent_name}.run',
        'DBOS.getResult',
        'DBOS.setEvent',
        'DBOS.recv',
        'DBOS.sleep',
        f'{agent_name}.run',
        'DBOS.getResult',
    ]
    second_run = [s['child_workflow_id'] for s in steps if s['function_name'] == f'{agent_name}.run'][-1]
    assert second_run is not None
    assert await workflow_step_names_async(second_run) == [
        f'{agent_name}__toolset__<agent>.call_tool.refund',
        f'{agent_name}__model.request',
    ]
    final: WorkflowHandleAsync[AgentRunResult[str]] = await DBOS.retrieve_workflow_async(second_run)
    messages = (await final.get_result()).all_messages()
    assert [p.content for m in messages for p in m.parts if isinstance(p, ToolReturnPart)] == ['refunded 30']
