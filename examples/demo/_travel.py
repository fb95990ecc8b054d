"""The demo's agent: a travel assistant that searches flights, books one (a side effect!) and emails the receipt.

By default its model is a scripted `FunctionModel` (4 turns, no network, no key); `--model openai:gpt-4o` swaps in
a real provider. Every call that actually executes writes to the demo journal (see `_journal`).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext
from typing_extensions import TypedDict

from examples.demo._journal import describe, journaled_call

AGENT_NAME = 'travel_agent'
PROMPT = 'Book me the cheapest flight from Paris to Tokyo on 2026-12-03 and email me the receipt.'
LATENCY_ENV = 'DURABLE_DEMO_LATENCY'
"""Seconds each fake call takes (so that a human can follow the demo, and the demo can kill mid-call)."""


class Flight(TypedDict):
    """A flight offer."""

    flight: str
    depart: str
    price_eur: int


class Booking(TypedDict):
    """A confirmed booking."""

    booking: str
    flight: str
    passenger: str


_FLIGHTS = TypeAdapter(list[Flight])
_BOOKING = TypeAdapter(Booking)


@dataclass
class Traveller:
    """The run's dependencies: who is travelling."""

    name: str = 'Ada Lovelace'
    email: str = 'ada@example.com'


def _latency() -> float:
    return float(os.environ.get(LATENCY_ENV, '0'))


async def search_flights(origin: str, destination: str, date: str) -> list[Flight]:
    """Search the flights between two cities on a date."""
    with journaled_call('tool', 'search_flights', f'{origin} -> {destination} on {date}') as call:
        await asyncio.sleep(_latency())
        flights: list[Flight] = [
            {'flight': 'AF276', 'depart': f'{date} 10:25', 'price_eur': 892},
            {'flight': 'JL46', 'depart': f'{date} 19:40', 'price_eur': 612},
            {'flight': 'NH216', 'depart': f'{date} 21:55', 'price_eur': 705},
        ]
        call.text = f'{len(flights)} flights, cheapest JL46 at 612 EUR'
        return flights


async def book_flight(ctx: RunContext[Traveller], flight: str) -> Booking:
    """Book a flight for the traveller and charge their card. Not idempotent: must run exactly once."""
    with journaled_call('tool', 'book_flight', f'{flight} for {ctx.deps.name}') as call:
        await asyncio.sleep(_latency())
        code = uuid.uuid4().hex[:6].upper()
        call.text = f'CARD CHARGED, booking {code}'
        return {'booking': code, 'flight': flight, 'passenger': ctx.deps.name}


async def send_receipt(ctx: RunContext[Traveller], booking: str) -> str:
    """Email the booking receipt to the traveller."""
    with journaled_call('tool', 'send_receipt', f'booking {booking} to {ctx.deps.email}') as call:
        await asyncio.sleep(_latency())
        call.text = f'email sent to {ctx.deps.email}'
        return call.text


def _tool_returns(messages: list[ModelMessage]) -> dict[str, Any]:
    returns: dict[str, Any] = {}
    for message in messages:
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, ToolReturnPart):
                    returns[part.tool_name] = part.content
    return returns


def _cheapest(flights: Any) -> str:
    options = _FLIGHTS.validate_python(flights)
    return min(options, key=lambda f: f['price_eur'])['flight']


def _booking_code(booking: Any) -> str:
    return _BOOKING.validate_python(booking)['booking']


async def scripted_travel_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """A fake model that plays the 4 turns of the travel scenario, deciding from the tool results so far."""
    await asyncio.sleep(_latency())
    done = _tool_returns(messages)
    if 'search_flights' not in done:
        call = ToolCallPart('search_flights', {'origin': 'Paris', 'destination': 'Tokyo', 'date': '2026-12-03'})
    elif 'book_flight' not in done:
        call = ToolCallPart('book_flight', {'flight': _cheapest(done['search_flights'])})
    elif 'send_receipt' not in done:
        call = ToolCallPart('send_receipt', {'booking': _booking_code(done['book_flight'])})
    else:
        code = _booking_code(done['book_flight'])
        return ModelResponse(
            parts=[TextPart(f'Done: you are booked on JL46 (booking {code}); the receipt is in your inbox.')]
        )
    return ModelResponse(parts=[call])


def _render_call(call: ToolCallPart) -> str:
    args = ', '.join(f'{k}={v!r}' for k, v in call.args_as_dict().items())
    return describe(f'{call.tool_name}({args})')


class JournaledModel(WrapperModel):
    """Journals each model request that actually executes (replayed requests never reach a model)."""

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        """Make the request and journal its start and outcome."""
        turn = sum(isinstance(m, ModelResponse) for m in messages) + 1
        with journaled_call('model', self.model_name, f'turn {turn}') as call:
            response = await self.wrapped.request(messages, model_settings, model_request_parameters)
            calls = [p for p in response.parts if isinstance(p, ToolCallPart)]
            if calls:
                call.text = 'asks for ' + ', '.join(_render_call(c) for c in calls)
            else:
                call.text = 'answers: ' + describe(response.text or '')
            return response


def fake_model() -> Model:
    """The scripted model used when no real provider is requested."""
    return FunctionModel(scripted_travel_model, model_name='scripted-travel-model')


def build_travel_agent(model: Model | None = None) -> Agent[Traveller, str]:
    """The plain (not yet durable) travel agent; wrap it in an engine's durable agent."""
    return Agent(
        JournaledModel(model or fake_model()),
        name=AGENT_NAME,
        deps_type=Traveller,
        instructions='You are a travel agent. Use the tools: search flights, book the cheapest, email the receipt.',
        tools=[search_flights, book_flight, send_receipt],
    )
