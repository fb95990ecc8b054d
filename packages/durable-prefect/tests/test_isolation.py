"""Runs that differ in deps, metadata, prompt or message history never share cached model or tool results."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from prefect import flow
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel

from durable_prefect import PrefectAgent, PrefectModel

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures('prefect_server')]


@dataclass
class Tenant:
    name: str


def _agent(name: str, seen: list[Any]) -> PrefectAgent[Tenant, str]:
    agent = Agent(TestModel(), name=name, deps_type=Tenant)

    @agent.tool
    def whoami(ctx: RunContext[Tenant]) -> str:
        seen.append((ctx.deps.name, (ctx.metadata or {}).get('region')))
        return f'{ctx.deps.name}@{(ctx.metadata or {}).get("region")}'

    return PrefectAgent(agent)


async def _iter_output(
    agent: PrefectAgent[Tenant, str],
    deps: Tenant,
    metadata: dict[str, Any] | None = None,
    prompt: str = 'who am i?',
    history: list[ModelMessage] | None = None,
) -> str:
    async with agent.iter(prompt, deps=deps, metadata=metadata, message_history=history) as run:
        async for _ in run:
            pass
    assert run.result is not None
    return run.result.output


async def test_runs_in_one_flow_share_results_only_when_inputs_are_equal_by_value() -> None:
    seen: list[Any] = []
    agent = _agent('tenants', seen)

    @flow
    async def many_runs() -> list[str]:
        return [
            await _iter_output(agent, Tenant('acme')),
            await _iter_output(agent, Tenant('globex')),  # other deps
            await _iter_output(agent, Tenant('acme'), {'region': 'eu'}),  # other metadata
            await _iter_output(agent, Tenant('acme'), prompt='who am i, really?'),  # other prompt
            await _iter_output(agent, Tenant('acme')),  # equal by value (a new object): reuses the first run
        ]

    outputs = await many_runs()
    assert outputs == [
        '{"whoami":"acme@None"}',
        '{"whoami":"globex@None"}',
        '{"whoami":"acme@eu"}',
        '{"whoami":"acme@None"}',
        '{"whoami":"acme@None"}',
    ]
    assert seen == [('acme', None), ('globex', None), ('acme', 'eu'), ('acme', None)]


def _ask_tool_then_count(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    last = messages[-1]
    if isinstance(last, ModelRequest) and any(isinstance(part, UserPromptPart) for part in last.parts):
        return ModelResponse(parts=[ToolCallPart('whoami', {}, tool_call_id='call-1')])
    return ModelResponse(parts=[TextPart(f'{len(messages)} messages')])


async def test_message_history_is_part_of_the_key() -> None:
    seen: list[Any] = []
    agent = _agent('histories', seen)
    with agent.wrapped.override(model=FunctionModel(_ask_tool_then_count)):
        first = await agent.wrapped.run('hello', deps=Tenant('acme'))
    assert seen == [('acme', None)]

    @flow
    async def with_and_without_history() -> list[str]:
        with agent.override(model=PrefectModel(FunctionModel(_ask_tool_then_count))):
            return [
                await _iter_output(agent, Tenant('acme')),
                await _iter_output(agent, Tenant('acme'), history=first.all_messages()),
            ]

    assert await with_and_without_history() == ['3 messages', '7 messages']
    assert seen == [('acme', None)] * 3


async def test_separate_agent_runs_never_share_results() -> None:
    seen: list[Any] = []
    agent = _agent('separate', seen)

    @flow
    async def two_runs() -> None:
        await agent.run('who am i?', deps=Tenant('acme'))
        await agent.run('who am i?', deps=Tenant('acme'))

    await two_runs()
    assert seen == [('acme', None), ('acme', None)]
