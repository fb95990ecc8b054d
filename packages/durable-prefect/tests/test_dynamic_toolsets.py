"""Dynamic toolsets with an id: built and listed in `Discover Tools: {id}` tasks, built again inside their call tasks.

The toolset function never runs in flow code (it may do I/O), so a retried flow run gets the listing and the completed
calls from the cache without calling it again; a call whose listing came from the cache builds the toolset itself.
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext, TaskRunContext
from prefect.flow_engine import run_flow
from prefect.states import Pending
from pydantic_ai import Agent, RunContext, Tool
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.toolsets import FunctionToolset
from pydantic_ai.usage import RunUsage

from durable_kernel import DynamicToolset
from durable_prefect import PrefectAgent, PrefectDurability, value_key
from durable_prefect._dynamic_toolset import (
    DISCOVER_TOOLS_TASK,
    _BuiltInTask,  # pyright: ignore[reportPrivateUsage]
    _DiscoverInput,  # pyright: ignore[reportPrivateUsage]
    _DynamicToolCallInput,  # pyright: ignore[reportPrivateUsage]
)
from durable_prefect._toolset import ToolCallInput

from ._helpers import flow_runs_named, task_runs_of

pytestmark = [pytest.mark.anyio]

in_prefect = pytest.mark.usefixtures('prefect_server')

Form = Literal['wrapper', 'capability']
FORMS: list[Form] = ['wrapper', 'capability']


def _where() -> str:
    """The task the toolset function runs in, without Prefect's `-<suffix>` (`'flow'` outside any task)."""
    task_ctx = TaskRunContext.get()
    return task_ctx.task_run.name.rsplit('-', 1)[0] if task_ctx is not None else 'flow'


@dataclass
class Script:
    """A model that calls `lookup` once, then answers; it can fail its second request once, the tool its first call."""

    fail_second_request: bool = False
    fail_first_call: bool = False

    def __post_init__(self) -> None:
        self.requests = 0
        self.calls: list[str] = []
        self.builds: list[tuple[str, int]] = []

    def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.requests += 1
        last = messages[-1]
        if not (isinstance(last, ModelRequest) and any(isinstance(p, ToolReturnPart) for p in last.parts)):
            return ModelResponse(parts=[ToolCallPart('lookup', {'key': 'a'}, tool_call_id='c1')])
        if self.fail_second_request:
            self.fail_second_request = False
            raise RuntimeError('transient model outage')
        return ModelResponse(
            parts=[TextPart(f'done: {[p for p in last.parts if isinstance(p, ToolReturnPart)][0].content}')]
        )

    def toolset(self) -> DynamicToolset[None]:
        def build(ctx: RunContext[None]) -> FunctionToolset[None]:
            self.builds.append((_where(), ctx.run_step))
            toolset = FunctionToolset[None]()

            @toolset.tool_plain
            def lookup(key: str, limit: int = 3) -> str:
                self.calls.append(_where())
                if self.fail_first_call:
                    self.fail_first_call = False
                    raise RuntimeError('transient tool outage')
                return f'{key}x{limit}'

            return toolset

        return DynamicToolset(build, id='crm')


async def _run_with_retry(form: Form, name: str, script: Script) -> str:
    """Run the agent in a user flow that retries once (the wrapper's run is a subflow of it)."""
    if form == 'wrapper':
        agent: Any = PrefectAgent(Agent(FunctionModel(script.respond), name=name, toolsets=[script.toolset()]))
    else:
        agent = Agent(
            FunctionModel(script.respond), name=name, toolsets=[script.toolset()], capabilities=[PrefectDurability()]
        )

    # Named after the test: `_states` reads this test's runs only, whatever ran before in the same server.
    @flow(name=f'{name} user flow', retries=1, retry_delay_seconds=0)
    async def user_flow() -> str:
        return (await agent.run('go')).output

    return await user_flow()


async def _states(form: Form, name: str, user_flow_count: int) -> list[tuple[str, str]]:
    """The agent's task runs (all attempts) as (name, state), in start order."""
    flow_name = f'{name} Run' if form == 'wrapper' else f'{name} user flow'
    runs = await flow_runs_named(flow_name)
    tasks = await task_runs_of([run.id for run in runs], expected=user_flow_count)
    return [(task.name.rsplit('-', 1)[0], task.state_name or '') for task in tasks]


@in_prefect
@pytest.mark.parametrize('form', FORMS)
async def test_the_listing_is_a_discover_tools_task_and_is_not_repeated_on_a_flow_retry(form: Form) -> None:
    script = Script(fail_second_request=True)
    name = f'discover-retry-{form}'
    assert await _run_with_retry(form, name, script) == 'done: ax3'
    # Built in its tasks only, once per unit across both attempts: the retry got the listings and the call cached.
    assert script.builds == [('Discover Tools: crm', 1), ('Call Tool: lookup', 1), ('Discover Tools: crm', 2)]
    assert script.calls == ['Call Tool: lookup']
    assert script.requests == 3  # the failed second request ran again
    # Every task run of both attempts (10; the wrapper's subflow adds its own run to the parent flow's): waiting for
    # fewer read the server before it had recorded the last cached listing, on a loaded machine.
    states = await _states(form, name, 10 if form == 'capability' else 11)
    assert states.count(('Discover Tools: crm', 'Completed')) == 2
    assert states.count(('Discover Tools: crm', 'Cached')) == 2
    assert states.count(('Call Tool: lookup', 'Cached')) == 1


@in_prefect
@pytest.mark.parametrize('form', FORMS)
async def test_a_call_whose_listing_came_from_the_cache_builds_the_toolset_in_its_task(form: Form) -> None:
    script = Script(fail_first_call=True)
    name = f'discover-cached-call-{form}'
    assert await _run_with_retry(form, name, script) == 'done: ax3'
    # The retry found step 1's listing cached: its call task built the toolset itself and called the tool.
    assert script.builds == [
        ('Discover Tools: crm', 1),
        ('Call Tool: lookup', 1),
        ('Call Tool: lookup', 1),
        ('Discover Tools: crm', 2),
    ]
    assert script.calls == ['Call Tool: lookup', 'Call Tool: lookup']
    states = await _states(form, name, 8)
    assert ('Discover Tools: crm', 'Cached') in states
    assert ('Call Tool: lookup', 'Failed') in states


@in_prefect
async def test_a_resumed_flow_run_does_not_build_the_toolset_again() -> None:
    """A flow run run again as a deployment runner does (rescheduled after a failure): all from the cache."""
    script = Script()
    agent = Agent(
        FunctionModel(script.respond),
        name='discover-resume',
        toolsets=[script.toolset()],
        capabilities=[PrefectDurability()],
    )
    fail = [True]
    seen: list[Any] = []

    @flow(name='discover-resume-flow')
    async def user_flow() -> str:
        context = FlowRunContext.get()
        assert context is not None
        assert context.flow_run is not None
        seen.append(context.flow_run.id)
        output = (await agent.run('go')).output
        if fail:
            fail.pop()
            raise RuntimeError('the process running the flow went away')
        return output

    with pytest.raises(RuntimeError, match='went away'):
        await user_flow()
    first_builds = list(script.builds)
    assert first_builds == [('Discover Tools: crm', 1), ('Call Tool: lookup', 1), ('Discover Tools: crm', 2)]
    async with get_client() as client:
        await client.set_flow_run_state(seen[0], Pending(), force=True)
        flow_run = await client.read_flow_run(seen[0])
    output: Any = await run_flow(user_flow, flow_run=flow_run)  # pyright: ignore[reportUnknownVariableType,reportGeneralTypeIssues]
    assert output == 'done: ax3'
    assert seen == [seen[0], seen[0]]
    assert script.builds == first_builds
    assert (script.requests, script.calls) == (2, ['Call Tool: lookup'])


def _tenant_toolset(builds: list[tuple[str, str]]) -> DynamicToolset[str]:
    def build(ctx: RunContext[str]) -> FunctionToolset[str]:
        builds.append((ctx.deps, _where()))
        toolset = FunctionToolset[str](instructions=f'You serve {ctx.deps}.')

        @toolset.tool
        def lookup(ctx: RunContext[str]) -> str:
            return f'record of {ctx.deps}'

        # A tool only this tenant has: a listing shared with the other tenant would offer it to the wrong one.
        toolset.add_function(lambda: ctx.deps, name=f'{ctx.deps}_only')
        return toolset

    return DynamicToolset(build, id='tenant')


@in_prefect
async def test_runs_with_different_deps_in_one_flow_run_do_not_share_a_listing() -> None:
    """Two runs in one flow run share the run's cache scope: only the deps (in the listing's key) tell them apart."""
    builds: list[tuple[str, str]] = []
    seen_instructions: list[str | None] = []

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        tools = sorted(tool.name for tool in info.function_tools)
        last = messages[-1]
        if isinstance(last, ModelRequest) and any(isinstance(p, ToolReturnPart) for p in last.parts):
            return ModelResponse(parts=[TextPart(' '.join(str(p.content) for p in last.parts))])
        seen_instructions.append(last.instructions if isinstance(last, ModelRequest) else None)
        return ModelResponse(parts=[ToolCallPart(tool, {}, tool_call_id=tool) for tool in tools])

    agent = Agent(
        FunctionModel(respond),
        name='discover-tenants',
        deps_type=str,
        toolsets=[_tenant_toolset(builds)],
        capabilities=[PrefectDurability()],
    )

    @flow
    async def user_flow() -> list[str]:
        return [(await agent.run('go', deps=tenant)).output for tenant in ('acme', 'globex')]

    assert await user_flow() == ['acme record of acme', 'globex record of globex']
    assert ('acme', 'Discover Tools: tenant') in builds
    assert ('globex', 'Discover Tools: tenant') in builds
    assert all(where != 'flow' for _, where in builds)
    # The toolset's instructions were listed in the same task, per tenant.
    assert seen_instructions == ['You serve acme.', 'You serve globex.']


@in_prefect
async def test_a_per_run_toolset_is_listed_once_per_run() -> None:
    builds: list[str] = []

    def build(ctx: RunContext[None]) -> FunctionToolset[None]:
        builds.append(_where())
        return FunctionToolset[None]([lambda: 'pong'])

    agent = PrefectAgent(
        Agent(TestModel(), name='discover-per-run', toolsets=[DynamicToolset(build, per_run_step=False, id='once')])
    )
    assert (await agent.run('go')).output == '{"<lambda>":"pong"}'
    assert builds == ['Discover Tools: once', 'Call Tool: <lambda>']
    [flow_run] = await flow_runs_named('discover-per-run Run')
    names = sorted(run.name.rsplit('-', 1)[0] for run in await task_runs_of([flow_run.id], expected=4))
    assert names == ['Call Tool: <lambda>', 'Discover Tools: once', 'Model Request: test', 'Model Request: test']


@in_prefect
async def test_a_dynamic_toolset_without_an_id_is_built_in_flow_code_as_before() -> None:
    builds: list[str] = []

    def build(ctx: RunContext[None]) -> FunctionToolset[None]:
        builds.append(_where())
        return FunctionToolset[None]([lambda: 'pong'])

    agent = PrefectAgent(Agent(TestModel(), name='discover-anonymous', toolsets=[DynamicToolset(build)]))
    assert (await agent.run('go')).output == '{"<lambda>":"pong"}'
    assert builds == ['flow', 'flow']
    [flow_run] = await flow_runs_named('discover-anonymous Run')
    names = sorted(run.name.rsplit('-', 1)[0] for run in await task_runs_of([flow_run.id], expected=3))
    assert names == ['Call Tool: <lambda>', 'Model Request: test', 'Model Request: test']


def test_outside_a_flow_nothing_changes() -> None:
    builds: list[str] = []

    def build(ctx: RunContext[None]) -> FunctionToolset[None]:
        builds.append('flow' if FlowRunContext.get() is None else 'in a flow')
        return FunctionToolset[None]([lambda: 'pong'])

    agent = Agent(
        TestModel(), name='outside', toolsets=[DynamicToolset(build, id='outside')], capabilities=[PrefectDurability()]
    )
    assert agent.run_sync('go', deps=None).output == '{"<lambda>":"pong"}'
    assert builds == ['flow', 'flow']


def _context(deps: str) -> RunContext[str]:
    return RunContext(deps=deps, model=TestModel(), usage=RunUsage(), run_step=1)


async def test_a_dynamic_calls_key_is_the_key_of_the_call_validated_in_flow_code() -> None:
    """Before discovery moved into a task the flow validated the arguments (defaults filled) and keyed the call so:
    the key of the same call is unchanged, so a flow run in flight at the upgrade finds its completed calls."""
    ctx = _context('acme')
    built = await FunctionToolset[str]([Tool(_search, name='search')]).get_tools(ctx)
    tool = built['search']
    toolset = DynamicToolset[str](lambda ctx: None, id='crm')
    validated = tool.args_validator.validate_python({'query': 'x'})
    assert validated == {'query': 'x', 'limit': 10}
    before = value_key(ToolCallInput(toolset, 'search', validated, ctx, tool))
    now = _DynamicToolCallInput(_BuiltInTask(toolset, run_args_validator=True), 'search', {'query': 'x'}, ctx, tool)
    assert value_key(now) == before
    # The call itself gets the arguments as the model sent them (the real tool validates them in the task).
    assert now.tool_args == {'query': 'x'}


def _search(query: str, limit: int = 10) -> str:
    return f'{query}:{limit}'  # pragma: no cover - keyed only


def test_a_listings_key_holds_the_deps_and_the_toolset_id() -> None:
    toolset = DynamicToolset[str](lambda ctx: None, id='crm')
    other = DynamicToolset[str](lambda ctx: None, id='erp')
    acme = value_key(_DiscoverInput(toolset, _context('acme')))
    assert acme == value_key(_DiscoverInput(toolset, _context('acme')))
    assert acme != value_key(_DiscoverInput(toolset, _context('globex')))
    assert acme != value_key(_DiscoverInput(other, _context('acme')))


def test_the_discover_tools_task_source_is_pinned() -> None:
    """Its source is part of its key (`TASK_SOURCE`): editing it makes flow runs in flight list their toolsets again
    (see `test_cache_key_stability.py`); put new behaviour around it."""
    source = inspect.getsource(DISCOVER_TOOLS_TASK)  # as Prefect reads it: unwrapped to the task function
    assert hashlib.sha256(source.encode()).hexdigest()[:16] == 'a693052a0879816a'
