"""Tools and dependencies: each tool call is a Temporal activity; `deps` cross into activities as pydantic data.

    uv run python -m examples.temporal.tools_deps [--model openai:gpt-4o] [--address localhost:7233]

After the run, the example lists the activities in the workflow's history: one per model request, one per tool call.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from temporalio import workflow
from temporalio.worker import Worker

from durable_temporal import PydanticAIWorkflow, TemporalAgent
from examples._support import example_args, real_model_name, run_example
from examples.temporal._server import ADDRESS_HELP, temporal_client


@dataclass
class Shop:
    """The run's dependencies: serializable data (activities get a copy), not clients or connections."""

    customer: str
    currency: str = 'EUR'


async def order_total(ctx: RunContext[Shop], order_id: str) -> float:
    """The total of one of the customer's orders."""
    return 42.5 if ctx.deps.customer == 'ada' else 0.0


async def charge_card(ctx: RunContext[Shop], amount: float) -> str:
    """Charge the customer's card: an activity, so a replayed workflow never charges twice."""
    return f'charged {amount:.2f} {ctx.deps.currency} to {ctx.deps.customer}'


def scripted_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """A fake model: look up the order, charge it, report."""
    done = {
        part.tool_name: part.content
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    }
    if 'order_total' not in done:
        return ModelResponse(parts=[ToolCallPart('order_total', {'order_id': 'A-17'})])
    if 'charge_card' not in done:
        return ModelResponse(parts=[ToolCallPart('charge_card', {'amount': done['order_total']})])
    return ModelResponse(parts=[TextPart(f'Order A-17 is paid: {done["charge_card"]}.')])


agent = Agent(
    FunctionModel(scripted_model),
    name='billing',
    deps_type=Shop,
    instructions='Look up the order total, charge it, then confirm.',
    tools=[order_total, charge_card],
)
temporal_agent = TemporalAgent(agent)


@workflow.defn
class BillingWorkflow(PydanticAIWorkflow):
    """Bills one order for one customer."""

    __pydantic_ai_agents__ = [temporal_agent]

    @workflow.run
    async def run(self, customer: str, model: str | None) -> str:
        result = await temporal_agent.run('Please bill order A-17.', deps=Shop(customer=customer), model=model)
        return result.output


async def main() -> None:
    args = example_args(__doc__ or '', options={'--address': ADDRESS_HELP})
    workflow_id = f'billing-{uuid.uuid4().hex[:8]}'
    async with (
        temporal_client(args.address) as client,
        Worker(client, task_queue='billing', workflows=[BillingWorkflow]),
    ):
        output = await client.execute_workflow(
            BillingWorkflow.run, args=['ada', real_model_name(args.model)], id=workflow_id, task_queue='billing'
        )
        print(output)
        print('Activities in the workflow history:')
        async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
            if event.HasField('activity_task_scheduled_event_attributes'):
                print(f'  {event.activity_task_scheduled_event_attributes.activity_type.name}')


if __name__ == '__main__':
    run_example(main, hard_exit=True)
