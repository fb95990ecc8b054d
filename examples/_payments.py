"""The deps of the `secrets_and_clients` examples: a live API client holding a key, rebuilt from a customer id."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo
from pydantic_ai.tools import RunContext

from durable_kernel import DepsResolver

PAYMENTS_API_KEY = 'sk-example-payments-3f9a1c'
"""Stands for the worker's secret (read from its environment or a secret store in a real deployment)."""


class PaymentsClient:
    """A live API client: it holds the key, and must not be stored by the engine."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def charge(self, customer: str, amount: float) -> str:
        assert self._api_key == PAYMENTS_API_KEY
        return f'charged {amount:.2f} EUR to {customer}'


@dataclass
class Shop:
    """The live deps the tools see."""

    customer: str
    payments: PaymentsClient


def shop_for(customer: str) -> Shop:
    """Rebuild the live deps from the reference, wherever the agent's code runs."""
    return Shop(customer, PaymentsClient(PAYMENTS_API_KEY))


SHOP = DepsResolver[Shop, str](reference=lambda shop: shop.customer, resolve=shop_for)
"""What the engine stores is the customer id; the tools see the client."""


async def charge_card(ctx: RunContext[Shop], amount: float) -> str:
    """Charge the customer's card with the live client."""
    return ctx.deps.payments.charge(ctx.deps.customer, amount)


def scripted_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """A fake model: charge, then report."""
    done = [
        part.content
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]
    if not done:
        return ModelResponse(parts=[ToolCallPart('charge_card', {'amount': 42.5})])
    return ModelResponse(parts=[TextPart(f'Done: {done[0]}.')])
