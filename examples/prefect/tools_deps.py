"""Tools and dependencies: each tool call is a Prefect task, cached by its arguments and the run's `deps`.

    uv run python -m examples.prefect.tools_deps [--model openai:gpt-4o]

A retried or resumed flow run finds `charge_card`'s result in the cache and does not charge the card again. The
cache key includes `deps` by value, so two runs for different customers never share a result.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from durable_prefect import PrefectAgent
from examples._support import choose_model, example_args, run_example


@dataclass
class Shop:
    """The run's dependencies: plain data, part of every task's cache key."""

    customer: str
    currency: str = 'EUR'


async def order_total(ctx: RunContext[Shop], order_id: str) -> float:
    """The total of one of the customer's orders."""
    return 42.5 if ctx.deps.customer == 'ada' else 0.0


async def charge_card(ctx: RunContext[Shop], amount: float) -> str:
    """Charge the customer's card: a cached task, so a retried flow run does not charge twice."""
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
    prefect_agent = PrefectAgent(agent)
    result = await prefect_agent.run('Please bill order A-17.', deps=Shop(customer='ada'))
    print(result.output)


if __name__ == '__main__':
    run_example(main)
