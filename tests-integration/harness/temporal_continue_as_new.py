"""The continue-as-new conformance scenario (Temporal only: the other engines have no continue-as-new).

A conversation of `CAN_TURNS` turns (a streamed text and a tool call each, then a final text) whose workflow continues
as new every `CAN_REQUESTS_PER_RUN` model requests, handing the conversation, usage and live event stream over to the
next run. Both forms: the wrapper (`TemporalAgent(..., continue_as_new=...)`) and the capability
(`TemporalDurability(...)` on the agent). Every model request and tool call is counted (`CALLS`): none may repeat.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, ToolReturnPart
from pydantic_ai.models.function import AgentInfo
from pydantic_ai.tools import RunContext
from pydantic_ai.usage import RunUsage, UsageLimits
from temporalio import workflow

from durable_temporal import (
    AgentEventStream,
    AgentHandover,
    ContinueAsNewAfter,
    TemporalAgent,
    TemporalDurability,
    hand_over,
)

from ._scripted import calls, scripted_model, text, turn

__all__ = (
    'CALLS',
    'CAN_EXPECTED_OUTPUT',
    'CAN_FORMS',
    'CAN_PROMPT',
    'CAN_TOPIC',
    'CAN_TURNS',
    'CanInput',
    'CapabilityConversation',
    'WrapperConversation',
    'can_capability_agent',
    'can_plain_agent',
    'can_wrapper_agent',
)

CAN_TURNS = 5
CAN_REQUESTS_PER_RUN = 2
"""6 model requests, 2 a run: the conversation continues as new twice (three runs)."""
CAN_TOPIC = 'conformance-can-events'
CAN_PROMPT = 'Take notes'
CAN_EXPECTED_OUTPUT = f'noted {CAN_TURNS} turns: ' + ', '.join(f'note {n}' for n in range(CAN_TURNS))

CALLS: Counter[str] = Counter()
"""`model-<turn>` and `tool-<turn>`: how often each ran (in the test process: the worker runs in it)."""


def _step(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    current = turn(messages)
    CALLS[f'model-{current}'] += 1
    if current < CAN_TURNS:
        return ModelResponse(
            parts=[*text(f'noting turn {current}').parts, *calls(('note', {'n': current}, f'call-{current}')).parts]
        )
    returns = [
        str(part.content)
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]
    return text(f'noted {len(returns)} turns: {", ".join(returns)}')


def note(n: int) -> str:
    """Take note `n`."""
    CALLS[f'tool-{n}'] += 1
    return f'note {n}'


@dataclass
class CanInput:
    """A conversation run's input: the prompt of the first run, the hand-over of the later ones."""

    prompt: str
    handover: AgentHandover | None = None


def _continue(ctx: RunContext[Any]) -> Any:
    events: AgentEventStream | None = getattr(workflow.instance(), 'events', None)
    return hand_over(ctx, lambda handover: [CanInput(prompt='', handover=handover)], events=events)


_AFTER = ContinueAsNewAfter(model_requests=CAN_REQUESTS_PER_RUN)

can_plain_agent = Agent(scripted_model('can_plain', _step), name='can_plain', tools=[note])
"""The plain agent the durable conversations are compared with (one uninterrupted run)."""

can_wrapper_agent = TemporalAgent(
    Agent(scripted_model('can_wrapper', _step), name='can_wrapper', tools=[note]),
    event_stream_topic=CAN_TOPIC,
    continue_as_new=_continue,
    continue_as_new_after=_AFTER,
)

can_capability_agent = Agent(
    scripted_model('can_capability', _step),
    name='can_capability',
    tools=[note],
    capabilities=[
        TemporalDurability(event_stream_topic=CAN_TOPIC, continue_as_new=_continue, continue_as_new_after=_AFTER)
    ],
)

_NO_LIMITS = UsageLimits(request_limit=None)


async def _run(agent: Any, arg: CanInput) -> str:
    if arg.handover is None:
        result = await agent.run(arg.prompt, usage_limits=_NO_LIMITS)
    else:
        handover = arg.handover.resume()
        result = await agent.run(
            message_history=handover.messages, usage=handover.usage, usage_limits=handover.usage_limits or _NO_LIMITS
        )
    usage: Any = result.usage
    requests = (usage if isinstance(usage, RunUsage) else usage()).requests
    return f'{result.output} ({requests} requests)'


def _stream(arg: CanInput) -> AgentEventStream:
    prior = arg.handover.event_stream_state if arg.handover is not None else None
    return AgentEventStream(prior_state=prior, drain_timeout=timedelta(seconds=30))


@workflow.defn(name='conformance_can_wrapper')
class WrapperConversation:
    """The wrapper form: hosts the event stream, continues as new through the wrapper's handler."""

    @workflow.init
    def __init__(self, arg: CanInput) -> None:
        self.events = _stream(arg)

    @workflow.run
    async def run(self, arg: CanInput) -> str:
        async with self.events:
            return await _run(can_wrapper_agent, arg)


@workflow.defn(name='conformance_can_capability')
class CapabilityConversation:
    """The capability form: the same, with `TemporalDurability` on the agent."""

    @workflow.init
    def __init__(self, arg: CanInput) -> None:
        self.events = _stream(arg)

    @workflow.run
    async def run(self, arg: CanInput) -> str:
        async with self.events:
            return await _run(can_capability_agent, arg)


CAN_FORMS: dict[str, tuple[type, Any]] = {
    'wrapper': (WrapperConversation, can_wrapper_agent),
    'capability': (CapabilityConversation, can_capability_agent),
}
"""Per form: the workflow and the agent (or wrapper) whose `stream_agent_events` reads it."""
