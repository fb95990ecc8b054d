"""Human approval: a tool that needs a human's OK pauses the workflow until a signal brings the decision.

    uv run python -m examples.temporal.human_approval [--model openai:gpt-4o] [--deny] [--address localhost:7233]

The agent's first run ends with `DeferredToolRequests`. The workflow exposes the pending calls through a query,
waits (durably, for days if need be: no worker holds it in memory) for the `decide` signal, then runs the agent again
with the decision as `deferred_tool_results`. Here the "human" is this script sending the signal.
"""

from __future__ import annotations

import asyncio
import uuid

from pydantic_ai import Agent, DeferredToolRequests, DeferredToolResults, Tool, ToolDenied
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from temporalio import workflow
from temporalio.worker import Worker

from durable_temporal import PydanticAIWorkflow, TemporalAgent
from examples._support import example_args, real_model_name, run_example
from examples.temporal._server import ADDRESS_HELP, temporal_client


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


agent = Agent(
    FunctionModel(scripted_model),
    name='support',
    output_type=[str, DeferredToolRequests],
    tools=[Tool(refund, requires_approval=True)],
)
temporal_agent = TemporalAgent(agent)


@workflow.defn
class SupportWorkflow(PydanticAIWorkflow):
    """Handles a support request; refunds wait for a human."""

    __pydantic_ai_agents__ = [temporal_agent]

    def __init__(self) -> None:
        self._pending: list[str] = []
        self._approved: bool | None = None

    @workflow.run
    async def run(self, prompt: str, model: str | None) -> str:
        result = await temporal_agent.run(prompt, model=model)
        while isinstance(result.output, DeferredToolRequests):
            requests = result.output
            self._pending = [f'{call.tool_name}({call.args_as_dict()})' for call in requests.approvals]
            await workflow.wait_condition(lambda: self._approved is not None)
            decision = True if self._approved else ToolDenied('A human declined the refund.')
            self._pending, self._approved = [], None
            results = DeferredToolResults(approvals={call.tool_call_id: decision for call in requests.approvals})
            result = await temporal_agent.run(
                message_history=result.all_messages(), deferred_tool_results=results, model=model
            )
        return result.output

    @workflow.query
    def pending(self) -> list[str]:
        """The tool calls waiting for a decision."""
        return self._pending

    @workflow.signal
    def decide(self, approved: bool) -> None:
        """The human's decision on the pending calls."""
        self._approved = approved


async def main() -> None:
    args = example_args(
        __doc__ or '', flags={'--deny': 'the human declines the refund'}, options={'--address': ADDRESS_HELP}
    )
    async with (
        temporal_client(args.address) as client,
        Worker(client, task_queue='support', workflows=[SupportWorkflow]),
    ):
        handle = await client.start_workflow(
            SupportWorkflow.run,
            args=['Please refund order A-17, it arrived broken.', real_model_name(args.model)],
            id=f'support-{uuid.uuid4().hex[:8]}',
            task_queue='support',
        )
        while not (pending := await handle.query(SupportWorkflow.pending)):
            await asyncio.sleep(0.1)
        print(f'Waiting for approval: {pending}')
        print('The human declines.' if args.deny else 'The human approves.')
        await handle.signal(SupportWorkflow.decide, not args.deny)
        print(await handle.result())


if __name__ == '__main__':
    run_example(main, hard_exit=True)
