"""Small helpers shared by the tests (not fixtures)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel


def scripted_model(*responses: ModelResponse) -> FunctionModel:
    """A model that answers the n-th request of a run with `responses[n]` (the last one repeats)."""

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        turn = sum(isinstance(message, ModelResponse) for message in messages)
        return responses[min(turn, len(responses) - 1)]

    async def stream_answer(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
        for index, part in enumerate(answer(messages, info).parts):
            if isinstance(part, TextPart):
                yield part.content
            elif isinstance(part, ToolCallPart):
                yield {
                    index: DeltaToolCall(
                        name=part.tool_name, json_args=part.args_as_json_str(), tool_call_id=part.tool_call_id
                    )
                }

    return FunctionModel(answer, stream_function=stream_answer)


def call(tool: str, args: dict[str, Any] | None = None, call_id: str = 'c1') -> ToolCallPart:
    return ToolCallPart(tool, args or {}, tool_call_id=call_id)


def respond(*parts: ToolCallPart | str) -> ModelResponse:
    return ModelResponse(parts=[TextPart(part) if isinstance(part, str) else part for part in parts])
