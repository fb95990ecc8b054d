"""The live-events workload: a `FunctionModel` that calls one tool, then streams N numbered text deltas.

The model records `time.perf_counter()` as it yields each delta, keyed by the run and the delta's index, so that a
consumer in the same process can take the latency of each delta from the model to itself. No configuration is captured
at import time (Temporal's workflow sandbox re-imports this module): the shape of a run travels in the prompt.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pydantic_ai import Agent, Tool
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

from ._workload import TOOL_NAME, lookup

LIVE_TOPIC = 'bench-events'
"""The topic the streamed runs publish to."""

SENT: dict[tuple[str, int], float] = {}
"""`(run tag, delta index)` -> `time.perf_counter()` when the model yielded that delta (filled by the model)."""

_TOKEN = re.compile(r'<(\d+)>')


@dataclass(frozen=True)
class LiveWorkload:
    """One streamed run: a tool call, then `deltas` text deltas `pause_ms` apart.

    Attributes:
        tag: Unique per run: it keys the model's send times.
        deltas: Text deltas the model streams after the tool call.
        pause_ms: Pause before each delta.
    """

    tag: str
    deltas: int = 50
    pause_ms: float = 10.0

    def prompt(self) -> str:
        """The user prompt that carries this workload to the model function."""
        return 'live ' + json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_messages(cls, messages: Sequence[ModelMessage]) -> LiveWorkload:
        """The workload of the run whose messages these are (read from its first user prompt)."""
        for message in messages:
            if isinstance(message, ModelRequest):
                for part in message.parts:
                    if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                        data = json.loads(part.content.removeprefix('live '))
                        return cls(str(data['tag']), int(data['deltas']), float(data['pause_ms']))
        raise ValueError('live benchmark model: no user prompt in the message history')


def _token(index: int) -> str:
    return f'<{index}>'


def _called_tool(messages: Sequence[ModelMessage]) -> bool:
    return any(isinstance(part, ToolReturnPart) for message in messages for part in message.parts)


_CALL = ToolCallPart(TOOL_NAME, {'turn': 0, 'index': 0, 'size': 100}, tool_call_id='call_live')


async def live_stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
    """First request: one tool call. Second request: the numbered deltas, each stamped as it is yielded."""
    if not _called_tool(messages):
        yield {0: DeltaToolCall(_CALL.tool_name, _CALL.args_as_json_str(), tool_call_id=_CALL.tool_call_id)}
        return
    workload = LiveWorkload.from_messages(messages)
    for index in range(workload.deltas):
        await asyncio.sleep(workload.pause_ms / 1000)
        SENT[(workload.tag, index)] = time.perf_counter()
        yield _token(index)


async def live_respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """The same responses unstreamed (a run without a topic does not stream), after the same total pause."""
    if not _called_tool(messages):
        return ModelResponse(parts=[_CALL])
    workload = LiveWorkload.from_messages(messages)
    await asyncio.sleep(workload.deltas * workload.pause_ms / 1000)
    return ModelResponse(parts=[TextPart(''.join(_token(index) for index in range(workload.deltas)))])


def build_live_agent(name: str, capabilities: Sequence[Any] = ()) -> Agent[None, str]:
    """The live-events benchmark agent (one tool, the streaming model above)."""
    return Agent(
        FunctionModel(live_respond, stream_function=live_stream, model_name='bench-live'),
        name=name,
        tools=[Tool(lookup, name=TOOL_NAME, takes_ctx=False)],
        capabilities=list(capabilities),
    )


def delta_indexes(event: object) -> list[int]:
    """The indexes of the model deltas a consumer's event carries (a text part starts with its first delta)."""
    if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
        text = event.part.content
    elif isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
        text = event.delta.content_delta
    else:
        return []
    return [int(match) for match in _TOKEN.findall(text)]
