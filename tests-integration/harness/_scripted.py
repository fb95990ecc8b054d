"""Scripted models: one step function gives both the non-streamed and the streamed response of a `FunctionModel`.

Tool call ids are always explicit so that the durable run and the plain run produce identical message histories.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

Step = Callable[[list[ModelMessage], AgentInfo], ModelResponse]


def scripted_model(name: str, step: Step, model_class: type[FunctionModel] = FunctionModel) -> FunctionModel:
    """A `FunctionModel` whose streamed responses carry the same parts as its plain ones (text in small chunks).

    `model_class` is a `FunctionModel` subclass to build instead (one that also counts tokens, say).
    """

    def function(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return step(messages, info)

    async def stream_function(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
        response = step(messages, info)
        for index, part in enumerate(response.parts):
            if isinstance(part, TextPart):
                words = part.content.split(' ')
                for position, word in enumerate(words):
                    yield word if position == 0 else f' {word}'
            elif isinstance(part, ToolCallPart):
                yield {
                    index: DeltaToolCall(
                        name=part.tool_name, json_args=part.args_as_json_str(), tool_call_id=part.tool_call_id
                    )
                }

    return model_class(function, stream_function=stream_function, model_name=name)


def turn(messages: list[ModelMessage]) -> int:
    """How many model responses the history already holds (0 on the first request of a run)."""
    return sum(isinstance(message, ModelResponse) for message in messages)


def last_request(messages: list[ModelMessage]) -> ModelRequest:
    """The newest request in the history."""
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            return message
    raise AssertionError('no request in the history')


def prompt_text(messages: list[ModelMessage]) -> str:
    """The text of the first user prompt in the history (its string content, or its string items joined)."""
    for message in messages:
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, UserPromptPart):
                    if isinstance(part.content, str):
                        return part.content
                    return ' '.join(item for item in part.content if isinstance(item, str))
    return ''


def text(content: str) -> ModelResponse:
    """A response with one text part."""
    return ModelResponse(parts=[TextPart(content)])


def calls(*parts: tuple[str, dict[str, Any], str]) -> ModelResponse:
    """A response calling tools: `(tool_name, args, tool_call_id)` each."""
    return ModelResponse(parts=[ToolCallPart(name, args, tool_call_id) for name, args, tool_call_id in parts])
