"""Tools and dependencies: each tool call is a DBOS step; `deps` reach the tools (and are pickled into the workflow).

    uv run python -m examples.dbos.tools_deps [--model openai:gpt-4o]

After the run, the example lists the workflow's steps: one per model request and one per tool call, so a crash after
`charge_card` ran never charges the card again.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from dbos import DBOS, SetWorkflowID
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from durable_dbos import DBOSAgent
from examples._support import choose_model, example_args, run_example


@dataclass
class Shop:
    """The run's dependencies. DBOS pickles workflow inputs, so deps must be picklable (no open clients)."""

    customer: str
    currency: str = 'EUR'


async def order_total(ctx: RunContext[Shop], order_id: str) -> float:
    """The total of one of the customer's orders."""
    return 42.5 if ctx.deps.customer == 'ada' else 0.0


async def charge_card(ctx: RunContext[Shop], amount: float) -> str:
    """Charge the customer's card. A side effect: as a DBOS step it runs once even if the process crashes."""
    return f'charged {amount:.2f} {ctx.deps.currency} to {ctx.deps.customer}'


def tool_returns(messages: list[ModelMessage]) -> dict[str, object]:
    return {
        part.tool_name: part.content
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    }


def scripted_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """A fake model: look up the order, charge it, report."""
    done = tool_returns(messages)
    if 'order_total' not in done:
        return ModelResponse(parts=[ToolCallPart('order_total', {'order_id': 'A-17'})])
    if 'charge_card' not in done:
        return ModelResponse(parts=[ToolCallPart('charge_card', {'amount': done['order_total']})])
    return ModelResponse(parts=[TextPart(f'Order A-17 is paid: {done["charge_card"]}.')])


async def main() -> None:
    args = example_args(__doc__ or '')
    agent = Agent(
        choose_model(args.model, FunctionModel(scripted_model)),
        name='billing',
        deps_type=Shop,
        instructions='Look up the order total, charge it, then confirm.',
        tools=[order_total, charge_card],
    )
    dbos_agent = DBOSAgent(agent)

    with tempfile.TemporaryDirectory() as tmp:
        url = f'sqlite:///{Path(tmp) / "dbos.sqlite"}'
        DBOS(config={'name': 'tools-deps', 'system_database_url': url, 'log_level': 'WARNING'})
        DBOS.launch()
        try:
            with SetWorkflowID('billing-order-A-17'):
                result = await dbos_agent.run('Please bill order A-17.', deps=Shop(customer='ada'))
            print(result.output)
            print('Steps recorded by DBOS:')
            for step in await DBOS.list_workflow_steps_async('billing-order-A-17'):
                print(f'  {step["function_id"]}. {step["function_name"]}')
        finally:
            DBOS.destroy()


if __name__ == '__main__':
    run_example(main)
