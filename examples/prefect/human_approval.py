"""Human approval: a tool that needs a human's OK ends the run with `DeferredToolRequests`; a second run continues.

    uv run python -m examples.prefect.human_approval [--model openai:gpt-4o] [--deny]

Prefect has no durable wait inside a flow that survives a process: the first flow run ends with the pending
requests (store them, notify a human); when the decision arrives (a webhook, a form, an automation), a second run
gets the message history and the decision as `deferred_tool_results`. Here the "human" is this script.
"""

from __future__ import annotations

from pydantic_ai import Agent, DeferredToolRequests, DeferredToolResults, Tool, ToolDenied
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from durable_prefect import PrefectAgent
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


async def main() -> None:
    args = example_args(__doc__ or '', flags={'--deny': 'the human declines the refund'})
    agent = Agent(
        choose_model(args.model, FunctionModel(scripted_model)),
        name='support',
        output_type=[str, DeferredToolRequests],
        tools=[Tool(refund, requires_approval=True)],
    )
    prefect_agent = PrefectAgent(agent)

    # First flow run: ends with the calls that wait for a human.
    result = await prefect_agent.run('Please refund order A-17, it arrived broken.')
    assert isinstance(result.output, DeferredToolRequests)
    requests = result.output
    print(f'Waiting for approval: {[f"{c.tool_name}({c.args_as_dict()})" for c in requests.approvals]}')
    history = result.all_messages()  # store it with the request (e.g. `ModelMessagesTypeAdapter.dump_json`)

    # ... later, the human decides; second flow run: continues with the decision.
    print('The human declines.' if args.deny else 'The human approves.')
    decision = ToolDenied('A human declined the refund.') if args.deny else True
    results = DeferredToolResults(approvals={c.tool_call_id: decision for c in requests.approvals})
    result = await prefect_agent.run(message_history=history, deferred_tool_results=results)
    print(result.output)


if __name__ == '__main__':
    run_example(main)
