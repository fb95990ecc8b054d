"""Human approval: a tool that needs a human's OK pauses the durable workflow until the decision arrives.

    uv run python -m examples.dbos.human_approval [--model openai:gpt-4o] [--deny]

The agent's first run ends with `DeferredToolRequests` (the refund waits for approval). The workflow publishes the
request with `DBOS.set_event`, waits with `DBOS.recv` (durably: a restart keeps waiting, it does not re-run the
agent), and a second run continues with the decision. Here the "human" is this script calling `DBOS.send`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from dbos import DBOS
from pydantic_ai import Agent, DeferredToolRequests, DeferredToolResults, Tool, ToolDenied
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from durable_dbos import DBOSAgent
from examples._support import choose_model, example_args, run_example


async def refund(order_id: str, amount: float) -> str:
    """Refund an order. Needs a human's approval."""
    return f'refunded {amount:.2f} EUR on order {order_id}'


def scripted_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """A fake model: ask for the refund, then report what happened to it."""
    returns = [
        part.content
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]
    if not returns:
        return ModelResponse(parts=[ToolCallPart('refund', {'order_id': 'A-17', 'amount': 42.5})])
    return ModelResponse(parts=[TextPart(f'Refund outcome: {returns[0]}')])


def build_workflow(dbos_agent: DBOSAgent[None, str | DeferredToolRequests]):
    """The support workflow: run the agent, wait for a human decision on each deferred call, run it again."""

    @DBOS.workflow(name='support_with_approval')
    async def support_with_approval(prompt: str) -> str:
        result = await dbos_agent.run(prompt)
        while isinstance(result.output, DeferredToolRequests):
            requests = result.output
            await DBOS.set_event_async('pending', [f'{c.tool_name}({c.args_as_dict()})' for c in requests.approvals])
            approved = await DBOS.recv_async('decision', timeout_seconds=24 * 3600)
            decision = True if approved else ToolDenied('A human declined the refund.')
            results = DeferredToolResults(approvals={c.tool_call_id: decision for c in requests.approvals})
            result = await dbos_agent.run(message_history=result.all_messages(), deferred_tool_results=results)
        return result.output

    return support_with_approval


async def main() -> None:
    args = example_args(__doc__ or '', flags={'--deny': 'the human declines the refund'})
    agent = Agent(
        choose_model(args.model, FunctionModel(scripted_model)),
        name='support',
        output_type=[str, DeferredToolRequests],
        tools=[Tool(refund, requires_approval=True)],
    )
    dbos_agent = DBOSAgent(agent)
    workflow = build_workflow(dbos_agent)

    with tempfile.TemporaryDirectory() as tmp:
        url = f'sqlite:///{Path(tmp) / "dbos.sqlite"}'
        DBOS(config={'name': 'approval-example', 'system_database_url': url, 'log_level': 'WARNING'})
        DBOS.launch()
        try:
            handle = await DBOS.start_workflow_async(workflow, 'Please refund order A-17, it arrived broken.')
            pending = await DBOS.get_event_async(handle.workflow_id, 'pending', timeout_seconds=60)
            print(f'Waiting for approval: {pending}')
            print('The human declines.' if args.deny else 'The human approves.')
            await DBOS.send_async(handle.workflow_id, not args.deny, topic='decision')
            print(await handle.get_result())
        finally:
            DBOS.destroy()


if __name__ == '__main__':
    run_example(main)
