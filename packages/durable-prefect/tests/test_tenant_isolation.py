"""Two runs in one flow whose deps hold different live clients never share a cached tool result or model response.

The bug this guards: a client (an object with `close()`) was keyed by its type alone, and `iter` runs its tasks in
the caller's flow, so the second tenant's run found the first one's tasks in the cache and answered with the first
tenant's data. Every way of starting a run is checked: `iter`, `run`, `run_sync`, inside nested flows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from prefect import flow
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from durable_prefect import PrefectAgent
from durable_prefect._key_text import MessageKeyCache

pytestmark = [pytest.mark.usefixtures('prefect_server')]


class TenantClient:
    """A live client: it has `close()`, and nothing but its tenant tells two of them apart."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant

    def close(self) -> None:
        pass


@dataclass
class ClientDeps:
    client: TenantClient


def _script(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    returns = [part for part in messages[-1].parts if isinstance(part, ToolReturnPart)]
    if returns:
        return ModelResponse(parts=[TextPart(str(returns[0].content))])
    return ModelResponse(parts=[ToolCallPart('orders', {})])


def _agent(name: str, calls: Counter[str]) -> PrefectAgent[ClientDeps, str]:
    agent = Agent(FunctionModel(_script), name=name, deps_type=ClientDeps)

    @agent.tool
    def orders(ctx: RunContext[ClientDeps]) -> str:
        calls[ctx.deps.client.tenant] += 1
        return f'orders of {ctx.deps.client.tenant}'

    return PrefectAgent(agent)


async def _iterate(agent: PrefectAgent[ClientDeps, str], deps: ClientDeps) -> str:
    async with agent.iter('orders?', deps=deps) as agent_run:
        async for _ in agent_run:
            pass
    assert agent_run.result is not None
    return agent_run.result.output


@pytest.mark.anyio
async def test_two_iter_runs_in_one_flow_get_their_own_tenant() -> None:
    calls: Counter[str] = Counter()
    agent = _agent('tenants-iter', calls)

    @flow
    async def both() -> list[str]:
        return [await _iterate(agent, ClientDeps(TenantClient(tenant))) for tenant in ('acme', 'globex')]

    assert await both() == ['orders of acme', 'orders of globex']
    assert calls == {'acme': 1, 'globex': 1}


@pytest.mark.anyio
async def test_a_client_changed_between_two_iter_runs_is_not_served_its_former_result() -> None:
    calls: Counter[str] = Counter()
    agent = _agent('tenants-mutated', calls)

    @flow
    async def both() -> list[str]:
        deps = ClientDeps(TenantClient('acme'))
        first = await _iterate(agent, deps)
        deps.client.tenant = 'globex'
        return [first, await _iterate(agent, deps)]

    assert await both() == ['orders of acme', 'orders of globex']


@pytest.mark.anyio
async def test_two_runs_in_one_flow_get_their_own_tenant() -> None:
    calls: Counter[str] = Counter()
    agent = _agent('tenants-run', calls)

    @flow
    async def both() -> list[str]:
        return [(await agent.run('orders?', deps=ClientDeps(TenantClient(t)))).output for t in ('acme', 'globex')]

    assert await both() == ['orders of acme', 'orders of globex']
    assert calls == {'acme': 1, 'globex': 1}


def test_two_run_sync_calls_in_one_flow_get_their_own_tenant() -> None:
    calls: Counter[str] = Counter()
    agent = _agent('tenants-sync', calls)

    @flow
    def both() -> list[str]:
        return [agent.run_sync('orders?', deps=ClientDeps(TenantClient(t))).output for t in ('acme', 'globex')]

    assert both() == ['orders of acme', 'orders of globex']
    assert calls == {'acme': 1, 'globex': 1}


@pytest.mark.anyio
async def test_runs_in_nested_flows_get_their_own_tenant() -> None:
    calls: Counter[str] = Counter()
    agent = _agent('tenants-nested', calls)

    @flow
    async def inner(tenants: list[str]) -> list[str]:
        return [await _iterate(agent, ClientDeps(TenantClient(tenant))) for tenant in tenants]

    @flow
    async def outer() -> list[str]:
        one = await inner(['acme', 'globex'])
        two = await inner(['globex', 'initech'])
        run = await agent.run('orders?', deps=ClientDeps(TenantClient('acme')))
        return [*one, *two, run.output]

    assert await outer() == [
        'orders of acme',
        'orders of globex',
        'orders of globex',
        'orders of initech',
        'orders of acme',
    ]
    assert calls == {'acme': 2, 'globex': 2, 'initech': 1}


@pytest.mark.anyio
async def test_a_flow_retried_in_the_same_process_reuses_the_tasks_of_its_live_client() -> None:
    # The identity token of a client is the same for as long as the client lives: a retry of the flow run in this
    # process finds the completed tasks. (In another process the token differs, and the tasks run again.)
    calls: Counter[str] = Counter()
    agent = _agent('tenants-retry', calls)
    deps = ClientDeps(TenantClient('acme'))
    attempts: list[int] = []

    @flow(retries=1, retry_delay_seconds=0)
    async def flaky() -> str:
        output = await _iterate(agent, deps)
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError('the flow fails after the agent run')
        return output

    assert await flaky() == 'orders of acme'
    assert len(attempts) == 2
    assert calls == {'acme': 1}


@pytest.mark.anyio
async def test_each_message_is_serialized_once_per_agent_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # A run of 12 model requests and 11 tool calls: every task's key holds the conversation so far, yet each message
    # is serialized once, whatever the number of keys that hold it (the newest request at most twice: pydantic-ai
    # sets its instructions after it joined the history).
    serialized: Counter[int] = Counter()
    original_put = MessageKeyCache.put

    def counting_put(self: MessageKeyCache, message: object, fragment: Any) -> None:
        serialized[id(message)] += 1
        original_put(self, message, fragment)

    monkeypatch.setattr(MessageKeyCache, 'put', counting_put)

    def long_script(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if len(messages) < 23:
            return ModelResponse(parts=[ToolCallPart('step', {'n': len(messages)})])
        return ModelResponse(parts=[TextPart('done')])

    agent = Agent(FunctionModel(long_script), name='serialized-once')

    @agent.tool_plain
    def step(n: int) -> int:
        return n

    result = await PrefectAgent(agent).run('go')
    assert result.output == 'done'
    assert len(result.all_messages()) == 24
    assert len(serialized) == 23  # every message but the last response was in a key
    assert max(serialized.values()) <= 2
