"""The chat agent every engine runs: a tool call, then an answer streamed token by token (slowly, to leave time to
kill the worker in the middle of it).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timezone

from pydantic_ai import Agent
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.messages import ModelMessage, ModelRequest, ToolReturnPart, UserPromptPart
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

from examples._support import choose_model

AGENT_NAME = 'web_chat'
TOPIC = 'web-chat-events'
"""The live-events topic the agent publishes to and the web server reads."""

ANSWER = (
    'A durable agent keeps going when its worker dies. Every model request and every tool call is recorded by '
    'the engine, so a new worker picks the run up where the old one stopped: the tool call above is not made '
    'again, and only this answer, which was still streaming, starts over from its first word.'
)


def answer_for(prompt: str) -> str:
    """The fake model's whole answer to `prompt` (the test compares the page with it)."""
    return f'You said: "{prompt}". {ANSWER}'


def _tokens(text: str) -> list[str]:
    words = text.split(' ')
    return [word if index == 0 else f' {word}' for index, word in enumerate(words)]


def _last_prompt(messages: Sequence[ModelMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                    return part.content
    return ''


def fake_model(token_delay: float) -> FunctionModel:
    """A model that first calls the `engine_clock` tool, then streams its answer one word every `token_delay` s."""

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
        last = messages[-1]
        called_tool = isinstance(last, ModelRequest) and any(isinstance(p, ToolReturnPart) for p in last.parts)
        if not called_tool:
            yield {0: DeltaToolCall(name='engine_clock', json_args=json.dumps({'question': _last_prompt(messages)}))}
            return
        for token in _tokens(answer_for(_last_prompt(messages))):
            await asyncio.sleep(token_delay)
            yield token

    return FunctionModel(stream_function=stream, model_name='slow-fake-model')


async def engine_clock(question: str) -> str:
    """Say when the question was received (a tool call the engine records, so it is not repeated after a crash)."""
    return f'received {len(question)} characters at {datetime.now(timezone.utc):%H:%M:%S} UTC'


def build_agent(
    model_name: str | None, token_delay: float, capabilities: Sequence[AbstractCapability[None]] = ()
) -> Agent[None, str]:
    """The chat agent: the model named by `--model` if it can be set up here, else the slow fake one."""
    model: Model = choose_model(model_name, fake_model(token_delay))
    return Agent(
        model,
        name=AGENT_NAME,
        tools=[engine_clock],
        instructions='You are a friendly assistant in a demo of durable agents. Call `engine_clock` once, then answer '
        'in about 80 words.',
        capabilities=list(capabilities),
    )
