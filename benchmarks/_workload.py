"""The benchmark workload: a zero-latency `FunctionModel` agent doing T model turns with K parallel tool calls each.

The agent is static (no configuration captured at import time), so the same module-level agent can be re-imported
by Temporal's workflow sandbox. The shape of a run travels in the user prompt instead: the model function reads it
back from the first user message on every turn.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any, cast

from pydantic_ai import Agent, RunContext, Tool
from pydantic_ai.messages import (
    AgentStreamEvent,
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

TOOL_NAME = 'lookup'
"""Name of the one tool the benchmark agent calls (K times in parallel per turn)."""


@dataclass(frozen=True)
class Workload:
    """The shape of one benchmark run.

    Attributes:
        turns: Model requests per run (T); the first T-1 responses call tools, the last one answers in text.
        tools: Parallel tool calls per tool-calling turn (K).
        result_bytes: Size of each tool result, in characters.
    """

    turns: int = 5
    tools: int = 2
    result_bytes: int = 100

    @property
    def tool_calls(self) -> int:
        """Tool calls per run: K on each of the first T-1 turns."""
        return (self.turns - 1) * self.tools

    @property
    def units(self) -> int:
        """Durable units a run needs when every model request and every tool call is one unit."""
        return self.turns + self.tool_calls

    def prompt(self) -> str:
        """The user prompt that carries this workload to the model function."""
        return 'bench ' + json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_prompt(cls, prompt: str) -> Workload:
        """Read a workload back from a prompt made by [`prompt`][benchmarks._workload.Workload.prompt]."""
        data = json.loads(prompt.removeprefix('bench '))
        return cls(turns=int(data['turns']), tools=int(data['tools']), result_bytes=int(data['result_bytes']))

    def label(self) -> str:
        """A short human label, e.g. `T=5 K=2 2048B`."""
        return f'T={self.turns} K={self.tools} {self.result_bytes}B'


def _first_prompt(messages: list[ModelMessage]) -> str:
    for message in messages:
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                    return part.content
    raise ValueError('benchmark model: no user prompt in the message history')


def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """The zero-latency model: K tool calls on each of the first T-1 turns, then a final text answer."""
    workload = Workload.from_prompt(_first_prompt(messages))
    turn = sum(isinstance(message, ModelResponse) for message in messages)
    if turn < workload.turns - 1:
        return ModelResponse(
            parts=[
                ToolCallPart(
                    TOOL_NAME,
                    {'turn': turn, 'index': index, 'size': workload.result_bytes},
                    tool_call_id=f'call_{turn}_{index}',
                )
                for index in range(workload.tools)
            ]
        )
    return ModelResponse(parts=[TextPart(f'done after {turn + 1} turns')])


async def respond_stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
    """The streaming form of [`respond`][benchmarks._workload.respond] (used when an event handler is set)."""
    response = respond(messages, info)
    calls = [part for part in response.parts if isinstance(part, ToolCallPart)]
    if calls:
        yield {
            index: DeltaToolCall(call.tool_name, call.args_as_json_str(), tool_call_id=call.tool_call_id)
            for index, call in enumerate(calls)
        }
    else:
        yield response.text or ''


async def drain_events(ctx: RunContext[Any], events: AsyncIterable[AgentStreamEvent]) -> None:
    """The benchmark's event stream handler: it consumes every event and does nothing with it."""
    async for _ in events:
        pass


def filler(tag: str, size: int) -> str:
    """A string of `size` characters that starts with `tag` (so equal sizes still make distinct payloads)."""
    return (tag + '.' * size)[:size]


def tool_result(turn: int, index: int, size: int) -> str:
    """The deterministic tool result of `size` characters."""
    stem = f'{turn}:{index}:'
    return (stem * (size // len(stem) + 1))[:size]


async def lookup(turn: int, index: int, size: int) -> str:
    """Return a result of `size` characters (the benchmark tool; it does no I/O).

    Args:
        turn: The model turn that called the tool.
        index: The position of the call among the turn's parallel calls.
        size: The size of the result.
    """
    return tool_result(turn, index, size)


def build_agent(name: str, tool: Tool[None] | None = None) -> Agent[None, str]:
    """The benchmark agent: a zero-latency `FunctionModel` and one tool.

    Args:
        name: The agent name (it names the durable units, so each variant in one process needs its own).
        tool: The tool to register; by default [`lookup`][benchmarks._workload.lookup] as a plain function tool.
    """
    return Agent(
        FunctionModel(respond, stream_function=respond_stream, model_name='bench'),
        name=name,
        tools=[tool or Tool(lookup, name=TOOL_NAME, takes_ctx=False)],
    )


@dataclass(frozen=True)
class TurnPayload:
    """Payload sizes of one turn, measured on a plain run: what a bare-engine floor must move to be equivalent.

    Attributes:
        request_bytes: JSON size of the turn's new model request (user prompt or tool returns).
        response_bytes: JSON size of the model response.
        tool_args_bytes: JSON size of each tool call's arguments.
        tool_result_bytes: Size of each tool result.
    """

    request_bytes: int
    response_bytes: int
    tool_args_bytes: tuple[int, ...]
    tool_result_bytes: tuple[int, ...]


def _json_size(message: ModelMessage) -> int:
    return len(ModelMessagesTypeAdapter.dump_json([message]))


def payload_plan(workload: Workload) -> list[TurnPayload]:
    """The per-turn payload sizes of `workload`: its conversation rebuilt message by message, without an agent run."""
    messages: list[ModelMessage] = [ModelRequest(parts=[UserPromptPart(workload.prompt())])]
    plan: list[TurnPayload] = []
    for _ in range(workload.turns):
        request = messages[-1]
        response = respond(messages, cast(AgentInfo, None))
        calls = [part for part in response.parts if isinstance(part, ToolCallPart)]
        returns = [
            ToolReturnPart(call.tool_name, lookup_result(call), tool_call_id=call.tool_call_id) for call in calls
        ]
        plan.append(
            TurnPayload(
                request_bytes=_json_size(request),
                response_bytes=_json_size(response),
                tool_args_bytes=tuple(len(call.args_as_json_str()) for call in calls),
                tool_result_bytes=tuple(len(part.model_response_str()) for part in returns),
            )
        )
        messages += [response, ModelRequest(parts=list(returns))]
    return plan


FloorPlan = list[tuple[int, int, list[int], list[int]]]
"""Per turn: request bytes, response bytes, tool-argument bytes and tool-result bytes (plain data, for any engine)."""


@functools.cache
def floor_plan(workload: Workload) -> FloorPlan:
    """What the bare-engine floor moves per turn: the payload sizes of `workload` as plain data."""
    return [
        (turn.request_bytes, turn.response_bytes, list(turn.tool_args_bytes), list(turn.tool_result_bytes))
        for turn in payload_plan(workload)
    ]


def lookup_result(call: ToolCallPart) -> str:
    """The result [`lookup`][benchmarks._workload.lookup] returns for `call`."""
    args = call.args_as_dict()
    return tool_result(int(args['turn']), int(args['index']), int(args['size']))
