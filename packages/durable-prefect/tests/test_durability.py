"""The capability form: `Agent(..., capabilities=[PrefectDurability()])` run by `agent.run(...)` in the user's flow."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any
from uuid import UUID

import pytest
from fastmcp import FastMCP
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext, TaskRunContext
from prefect.flow_engine import run_flow
from prefect.states import Pending
from pydantic_ai import Agent, RunContext, Tool
from pydantic_ai.exceptions import UserError
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.messages import (
    AgentStreamEvent,
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.toolsets import FunctionToolset

from durable_kernel import PYDANTIC_AI_2, DynamicToolset
from durable_prefect import PrefectAgent, PrefectDurability, TaskConfig

from ._helpers import flow_runs_named, task_runs_of

pytestmark = [pytest.mark.anyio]

in_prefect = pytest.mark.usefixtures('prefect_server')


def _flow_run_id() -> UUID:
    context = FlowRunContext.get()
    assert context is not None
    assert context.flow_run is not None
    return context.flow_run.id


async def _run_in_flow(body: Callable[[], Awaitable[Any]]) -> tuple[Any, UUID]:
    """Run `body` in a fresh user flow: its result and the flow run's id."""

    @flow
    async def user_flow() -> tuple[Any, UUID]:
        return await body(), _flow_run_id()

    return await user_flow()


async def _task_names(flow_run_id: UUID, expected: int) -> list[str]:
    """The names of the flow run's task runs, in start order, without Prefect's `-<suffix>`."""
    return [run.name.rsplit('-', 1)[0] for run in await task_runs_of([flow_run_id], expected=expected)]


class Recorder:
    """An event stream handler noting each event's type and whether it ran inside a Prefect task."""

    def __init__(self) -> None:
        self.events: list[tuple[str, bool]] = []

    async def __call__(self, ctx: RunContext[Any], stream: AsyncIterable[AgentStreamEvent]) -> None:
        async for event in stream:
            self.events.append((type(event).__name__, TaskRunContext.get() is not None))


def _agent_with_tool(name: str, calls: list[str], **kwargs: Any) -> Agent[None, str]:
    agent = Agent(TestModel(), name=name, **kwargs)

    @agent.tool_plain
    def ping() -> str:
        calls.append('ping')
        return 'pong'

    return agent


@in_prefect
async def test_simple_run_in_a_flow_makes_the_model_request_a_task() -> None:
    agent = Agent(TestModel(custom_output_text='hi'), name='cap-simple', capabilities=[PrefectDurability()])
    output, flow_run_id = await _run_in_flow(lambda: agent.run('hello'))
    assert output.output == 'hi'
    assert await _task_names(flow_run_id, expected=1) == ['Model Request: test']


@in_prefect
async def test_function_tool_calls_are_tasks() -> None:
    calls: list[str] = []
    agent = _agent_with_tool('cap-tools', calls, capabilities=[PrefectDurability()])
    result, flow_run_id = await _run_in_flow(lambda: agent.run('go'))
    assert result.output == '{"ping":"pong"}'
    assert calls == ['ping']
    assert await _task_names(flow_run_id, expected=3) == [
        'Model Request: test',
        'Call Tool: ping',
        'Model Request: test',
    ]


@in_prefect
async def test_streamed_model_and_event_stream_handler() -> None:
    recorder = Recorder()
    calls: list[str] = []
    agent = _agent_with_tool('cap-events', calls, capabilities=[PrefectDurability(event_stream_handler=recorder)])
    result, flow_run_id = await _run_in_flow(lambda: agent.run('go'))
    assert result.output == '{"ping":"pong"}'

    # The handler sees what it sees without Prefect, every event inside a task: the model's events live in the
    # streaming model request task, each other event in a `Handle Stream Event` task of its own.
    plain = Recorder()
    await _agent_with_tool('cap-events-plain', [], capabilities=[PrefectDurability(event_stream_handler=plain)]).run(
        'go'
    )
    assert [name for name, _ in recorder.events] == [name for name, _ in plain.events]
    assert all(in_task for _, in_task in recorder.events)
    assert not any(in_task for _, in_task in plain.events)
    assert 'PartStartEvent' in [name for name, _ in recorder.events]

    names = await _task_names(flow_run_id, expected=5)
    assert sorted(names) == sorted(
        [
            'Model Request (Streaming): test',
            'Handle Stream Event',
            'Call Tool: ping',
            'Handle Stream Event',
            'Model Request (Streaming): test',
        ]
    )
    assert names[0] == names[-1] == 'Model Request (Streaming): test'


@in_prefect
async def test_identical_events_in_one_flow_are_each_handled() -> None:
    tool_events: list[AgentStreamEvent] = []

    async def handler(ctx: RunContext[Any], stream: AsyncIterable[AgentStreamEvent]) -> None:
        async for event in stream:
            if isinstance(event, (FunctionToolCallEvent, FunctionToolResultEvent)):
                tool_events.append(event)

    agent = _agent_with_tool('cap-twice', [], capabilities=[PrefectDurability(event_stream_handler=handler)])

    async def twice() -> None:
        await agent.run('same')
        await agent.run('same')

    await _run_in_flow(twice)
    assert len(tool_events) == 4


@in_prefect
async def test_a_run_stream_in_a_flow_streams_the_recorded_response() -> None:
    recorder = Recorder()
    agent = Agent(
        TestModel(custom_output_text='hello world'),
        name='cap-run-stream',
        capabilities=[PrefectDurability(event_stream_handler=recorder)],
    )

    async def stream() -> tuple[list[str], str]:
        async with agent.run_stream('hi') as streamed:
            chunks = [chunk async for chunk in streamed.stream_text(debounce_by=None)]
            return chunks, await streamed.get_output()

    (chunks, output), flow_run_id = await _run_in_flow(stream)
    # The model task recorded the response; the flow streams its text (each part as one event, as pydantic-ai 2.x).
    assert output == 'hello world'
    assert chunks[-1] == 'hello world'
    assert await _task_names(flow_run_id, expected=1) == ['Model Request (Streaming): test']
    # The handler saw the live events inside the task, and not again in the flow.
    assert recorder.events
    assert all(in_task for _, in_task in recorder.events)


@in_prefect
async def test_models_selects_a_registered_model_by_instance() -> None:
    other = TestModel(custom_output_text='from other')
    other_name = 'other-model'
    other._model_name = other_name  # pyright: ignore[reportPrivateUsage]
    agent = Agent(
        TestModel(custom_output_text='from default'),
        name='cap-models',
        capabilities=[PrefectDurability(models={'other': other})],
    )

    async def both() -> tuple[str, str]:
        return (await agent.run('a')).output, (await agent.run('b', model=other)).output

    outputs, flow_run_id = await _run_in_flow(both)
    assert outputs == ('from default', 'from other')
    assert await _task_names(flow_run_id, expected=2) == ['Model Request: test', f'Model Request: {other_name}']


class FlakyModel:
    """Asks for a tool call, then answers on the second request; counts its requests."""

    def __init__(self) -> None:
        self.requests = 0

    def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.requests += 1
        last = messages[-1]
        if isinstance(last, ModelRequest) and any(isinstance(part, ToolReturnPart) for part in last.parts):
            return ModelResponse(parts=[TextPart('done')])
        return ModelResponse(parts=[ToolCallPart('charge', {'amount': 3}, tool_call_id='call-1')])


def _charging_agent(name: str, model: FlakyModel, charges: list[int]) -> Agent[None, str]:
    toolset = FunctionToolset[None]()

    @toolset.tool_plain
    def charge(amount: int) -> str:
        charges.append(amount)
        return 'charged'

    return Agent(FunctionModel(model.respond), name=name, toolsets=[toolset], capabilities=[PrefectDurability()])


@in_prefect
async def test_a_retried_flow_run_repeats_no_completed_model_request_or_tool_call() -> None:
    model, charges = FlakyModel(), list[int]()
    agent = _charging_agent('cap-retry', model, charges)
    attempts: list[UUID] = []

    @flow(retries=1, retry_delay_seconds=0)
    async def user_flow() -> str:
        attempts.append(_flow_run_id())
        result = await agent.run('go')
        if len(attempts) == 1:
            raise RuntimeError('the flow fails after the agent run')
        return result.output

    assert await user_flow() == 'done'
    assert len(attempts) == 2
    assert attempts[0] == attempts[1]
    assert model.requests == 2
    assert charges == [3]
    # The second attempt found all three tasks of the first one by their cache keys.
    runs = await task_runs_of([attempts[0]], expected=6)
    assert sorted(run.state_name or '' for run in runs) == ['Cached'] * 3 + ['Completed'] * 3


@in_prefect
async def test_a_flow_run_run_again_as_a_deployment_runner_does_reuses_completed_tasks() -> None:
    # What a served deployment does with a flow run rescheduled after a failure (a retry from the UI or the API):
    # the runner executes the same flow run again with `run_flow`.
    model, charges = FlakyModel(), list[int]()
    agent = _charging_agent('cap-rerun', model, charges)
    fail = [True]
    seen: list[UUID] = []

    @flow(name='cap-rerun-user-flow')
    async def user_flow() -> str:
        seen.append(_flow_run_id())
        result = await agent.run('go')
        if fail:
            fail.pop()
            raise RuntimeError('the process running the flow went away')
        return result.output

    with pytest.raises(RuntimeError, match='went away'):
        await user_flow()
    assert (model.requests, charges) == (2, [3])
    async with get_client() as client:
        await client.set_flow_run_state(seen[0], Pending(), force=True)
        flow_run = await client.read_flow_run(seen[0])
    output: Any = await run_flow(user_flow, flow_run=flow_run)  # pyright: ignore[reportUnknownVariableType,reportGeneralTypeIssues]
    assert output == 'done'
    assert seen == [seen[0], seen[0]]
    assert (model.requests, charges) == (2, [3])


@in_prefect
async def test_tool_metadata_configures_or_skips_the_tool_task() -> None:
    toolset = FunctionToolset[None]()

    @toolset.tool_plain(metadata={'prefect': False})
    def in_flow() -> str:
        assert TaskRunContext.get() is None
        return 'flow'

    @toolset.tool_plain(metadata={'prefect': TaskConfig(retries=2)})
    def in_task() -> str:
        task_run = TaskRunContext.get()
        assert task_run is not None
        assert task_run.task.retries == 2
        return 'task'

    agent = Agent(TestModel(), name='cap-metadata', toolsets=[toolset], capabilities=[PrefectDurability()])
    result, flow_run_id = await _run_in_flow(lambda: agent.run('go'))
    assert result.output == '{"in_flow":"flow","in_task":"task"}'
    assert sorted(await _task_names(flow_run_id, expected=3)) == [
        'Call Tool: in_task',
        'Model Request: test',
        'Model Request: test',
    ]


@in_prefect
@pytest.mark.skipif(
    'durable' not in inspect.signature(Tool).parameters, reason="`Tool(..., durable=False)` is pydantic-ai 2.78's"
)
async def test_a_tool_that_says_durable_false_runs_without_a_task() -> None:
    """pydantic-ai 2.78's `durable=False`: no task for the tool; its `metadata['prefect']` would win over it."""
    opted_out: dict[str, Any] = {'durable': False}

    def in_flow() -> str:
        assert TaskRunContext.get() is None
        return 'flow'

    def in_task() -> str:
        assert TaskRunContext.get() is not None
        return 'task'

    toolset = FunctionToolset[None](
        [Tool(in_flow, **opted_out), Tool(in_task, metadata={'prefect': TaskConfig(retries=1)}, **opted_out)]
    )
    agent = Agent(TestModel(), name='cap-durable-false', toolsets=[toolset], capabilities=[PrefectDurability()])
    result, flow_run_id = await _run_in_flow(lambda: agent.run('go'))
    assert result.output == '{"in_flow":"flow","in_task":"task"}'
    assert sorted(await _task_names(flow_run_id, expected=3)) == [
        'Call Tool: in_task',
        'Model Request: test',
        'Model Request: test',
    ]


@in_prefect
async def test_tool_metadata_configures_the_tools_of_a_dynamic_toolset() -> None:
    """A dynamic toolset is built anew for each run: its tools keep the metadata rules of the capability form."""

    def build(ctx: RunContext[None]) -> FunctionToolset[None]:
        toolset = FunctionToolset[None]()

        @toolset.tool_plain(metadata={'prefect': False})
        def in_flow() -> str:
            assert TaskRunContext.get() is None
            return 'flow'

        @toolset.tool_plain
        def in_task() -> str:
            assert TaskRunContext.get() is not None
            return 'task'

        return toolset

    agent = Agent(
        TestModel(),
        name='cap-dynamic-metadata',
        toolsets=[DynamicToolset(build, id='built')],
        capabilities=[PrefectDurability()],
    )
    result, flow_run_id = await _run_in_flow(lambda: agent.run('go'))
    assert result.output == '{"in_flow":"flow","in_task":"task"}'
    # The toolset is built and listed in a `Discover Tools` task at each step, never in flow code.
    assert sorted(await _task_names(flow_run_id, expected=5)) == [
        'Call Tool: in_task',
        'Discover Tools: built',
        'Discover Tools: built',
        'Model Request: test',
        'Model Request: test',
    ]


@pytest.mark.skipif(not PYDANTIC_AI_2, reason="pydantic-ai 2.x's `DynamicCapability` brings its tools as a toolset")
@in_prefect
async def test_a_dynamic_capability_tool_opts_out_of_its_task_with_metadata() -> None:
    capabilities: Any = importlib.import_module('pydantic_ai.capabilities')
    task_runs: list[object] = []
    factory_calls: list[int] = []

    def dynamic_tool() -> str:
        task_runs.append(TaskRunContext.get())
        return 'dynamic result'

    def factory(ctx: RunContext[None]) -> Any:
        factory_calls.append(1)
        toolset = FunctionToolset[None]()
        toolset.add_function(dynamic_tool, metadata={'prefect': False})
        return capabilities.Capability(toolsets=[toolset])

    agent = Agent(
        TestModel(),
        name='cap-dynamic-capability-inline',
        capabilities=[capabilities.DynamicCapability(factory, id='dyn_inline'), PrefectDurability()],
    )
    result, flow_run_id = await _run_in_flow(lambda: agent.run('go'))
    assert result.output == '{"dynamic_tool":"dynamic result"}'
    assert task_runs == [None]
    # The factory runs once per run: the listing (its `Discover Tools` task, once: the toolset is `per_run_step=False`)
    # and the call in the flow reuse the capability the run resolved.
    assert factory_calls == [1]
    assert sorted(await _task_names(flow_run_id, expected=3)) == [
        'Discover Tools: dyn_inline',
        'Model Request: test',
        'Model Request: test',
    ]


@in_prefect
async def test_a_tool_metadata_value_that_is_no_task_config_is_refused() -> None:
    toolset = FunctionToolset[None]()

    @toolset.tool_plain(metadata={'prefect': 'fast'})
    def odd() -> str:
        return 'odd'  # pragma: no cover - refused before it runs

    agent = Agent(TestModel(), name='cap-odd-metadata', toolsets=[toolset], capabilities=[PrefectDurability()])
    with pytest.raises(UserError, match=r'must be a mapping of `TaskConfig` options, or `False`'):
        await _run_in_flow(lambda: agent.run('go'))


async def test_outside_a_flow_the_capability_changes_nothing() -> None:
    recorder = Recorder()
    calls: list[str] = []
    agent = _agent_with_tool('cap-outside', calls, capabilities=[PrefectDurability(event_stream_handler=recorder)])
    plain_recorder = Recorder()
    plain = _agent_with_tool('cap-outside-plain', [])
    result = await agent.run('go')
    plain_result = await plain.run('go', event_stream_handler=plain_recorder)
    assert result.output == plain_result.output
    assert calls == ['ping']
    assert recorder.events == plain_recorder.events
    assert not any(in_task for _, in_task in recorder.events)
    # No Prefect machinery is installed: the model and the tool are called as they are.
    assert PrefectDurability.from_agent(agent).in_durable_context is False


def test_an_agent_without_a_name_is_refused() -> None:
    # pydantic-ai 2.x binds the capability in `Agent(...)`, 1.107 when the agent is first run or looked up.
    with pytest.raises(UserError, match=r'needs a unique `name`, the same in every deploy.*PrefectDurability'):
        PrefectDurability.from_agent(Agent(TestModel(), capabilities=[PrefectDurability()]))


def test_the_name_given_to_the_capability_is_enough() -> None:
    agent = Agent(TestModel(), capabilities=[PrefectDurability(name='named-by-capability')])
    assert PrefectDurability.from_agent(agent).name == 'named-by-capability'


def test_two_durability_capabilities_are_refused() -> None:
    agent = Agent(TestModel(), name='cap-two', capabilities=[PrefectDurability(), PrefectDurability()])
    with pytest.raises(UserError, match='several durability capabilities'):
        PrefectDurability.from_agent(agent)


@in_prefect
async def test_an_unregistered_model_instance_is_refused_in_a_flow() -> None:
    agent = Agent(TestModel(), name='cap-unregistered', capabilities=[PrefectDurability()])
    with pytest.raises(UserError, match=r'neither the agent.s default model nor registered'):
        await _run_in_flow(lambda: agent.run('go', model=TestModel()))


@in_prefect
async def test_both_forms_make_the_same_tasks_for_the_same_agent() -> None:
    calls: list[str] = []
    agent = _agent_with_tool('cap-vs-wrapper', calls, capabilities=[PrefectDurability()])
    _, capability_flow_run = await _run_in_flow(lambda: agent.run('go'))
    wrapper_agent = PrefectAgent(_agent_with_tool('wrapper-vs-cap', calls))
    await _run_in_flow(lambda: wrapper_agent.run('go'))
    capability_names = await _task_names(capability_flow_run, expected=3)
    [wrapper_run] = await flow_runs_named('wrapper-vs-cap Run')
    assert wrapper_run.parent_task_run_id is not None  # the wrapper's run is a subflow of the user's flow
    assert await _task_names(wrapper_run.id, expected=3) == capability_names


@in_prefect
async def test_mcp_instructions_are_read_in_a_task_when_the_toolset_includes_them() -> None:
    server: FastMCP[Any] = FastMCP('echo-in-process', instructions='Shout politely.')

    @server.tool
    def shout(text: str) -> str:
        return text.upper()

    seen: list[str | None] = []

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.append(info.instructions)
        if any(isinstance(message, ModelResponse) for message in messages):
            return ModelResponse(parts=[TextPart('done')])
        return ModelResponse(parts=[ToolCallPart('shout', {'text': 'a'}, tool_call_id='c1')])

    toolset: MCPToolset[None] = MCPToolset(server, id='echo', init_timeout=60.0, include_instructions=True)
    agent = Agent(
        FunctionModel(answer), name='cap-mcp-instructions', toolsets=[toolset], capabilities=[PrefectDurability()]
    )
    result, flow_run_id = await _run_in_flow(lambda: agent.run('shout'))
    assert result.output == 'done'
    names = await _task_names(flow_run_id, expected=7)
    assert names.count('Get MCP Instructions: echo') == 2
    assert names.count('Get MCP Tools: echo') == 2
    assert len(seen) == 2
    assert all(instructions is not None and 'Shout politely.' in instructions for instructions in seen)


@in_prefect
async def test_mcp_listing_and_calls_are_tasks_with_the_capability_form_names() -> None:
    server: FastMCP[Any] = FastMCP('echo-in-process')

    @server.tool
    def shout(text: str) -> str:
        return text.upper()

    toolset: MCPToolset[None] = MCPToolset(server, id='echo', init_timeout=60.0)
    agent = Agent(TestModel(), name='cap-mcp', toolsets=[toolset], capabilities=[PrefectDurability()])
    result, flow_run_id = await _run_in_flow(lambda: agent.run('shout'))
    assert result.output == '{"shout":"A"}'
    assert await _task_names(flow_run_id, expected=5) == [
        'Get MCP Tools: echo',
        'Model Request: test',
        'Call MCP Tool: shout',
        'Get MCP Tools: echo',
        'Model Request: test',
    ]


@in_prefect
@pytest.mark.skipif(
    'capabilities' not in inspect.signature(Agent.override).parameters,
    reason='`override(capabilities=...)` exists from pydantic-ai 2.78',
)
async def test_an_override_that_drops_the_durability_is_refused() -> None:
    agent: Any = Agent(TestModel(custom_output_text='hi'), name='cap-override', capabilities=[PrefectDurability()])
    with (
        pytest.raises(UserError, match=r"leaves out the agent's `PrefectDurability`: runs inside the block would"),
        agent.override(capabilities=[]),
    ):
        pass  # pragma: no cover
    with (
        pytest.raises(UserError, match=r"leaves out the agent's `PrefectDurability`"),
        agent.override(capabilities=[PrefectDurability()]),
    ):
        pass  # pragma: no cover
    # Keeping the agent's own capabilities (entered outside the flow, carried into it): still durable.
    with agent.override(capabilities=[*agent.root_capability.capabilities]):
        output, flow_run_id = await _run_in_flow(lambda: agent.run('hello'))
    assert output.output == 'hi'
    assert await _task_names(flow_run_id, expected=1) == ['Model Request: test']


@in_prefect
async def test_a_capability_loaded_in_the_run_is_available_in_the_tool_task_after() -> None:
    # A task runs in the flow's process with the live run context: the availability the run computes (the tools
    # revealed, the capabilities loaded) is what the tool reads, with no snapshot to send (Temporal's case).
    from pydantic_ai.capabilities import Capability

    def script(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returned = {p.tool_name for m in messages for p in m.parts if isinstance(p, ToolReturnPart)}
        if 'load_capability' not in returned:
            return ModelResponse(parts=[ToolCallPart('load_capability', {'id': 'billing'})])
        if 'refund' not in returned:
            return ModelResponse(parts=[ToolCallPart('refund', {})])
        return ModelResponse(parts=[TextPart('done')])

    seen: dict[str, Any] = {}

    async def refund(ctx: RunContext[None]) -> str:
        seen['tools'] = set(ctx.available_tool_names)
        # The snapshot's name is told by the property itself: `available_capability_ids` on 1.107 and 2.33, renamed
        # `active_capability_ids` later in 2.x (the old name then warns on every read).
        snapshot = (
            'active_capability_ids' if hasattr(RunContext, 'active_capability_ids') else 'available_capability_ids'
        )
        seen['capabilities'] = set(getattr(ctx, snapshot))
        seen['in_task'] = TaskRunContext.get() is not None
        return 'refunded'

    billing = Capability[None](defer_loading=True, id='billing', toolsets=[FunctionToolset([refund], id='billing')])
    agent = Agent(FunctionModel(script), name='cap-availability', capabilities=[billing, PrefectDurability()])
    result, _ = await _run_in_flow(lambda: agent.run('refund'))
    assert result.output == 'done'
    assert seen['in_task'] is True
    assert {'refund', 'load_capability'} <= seen['tools']
    assert 'billing' in seen['capabilities']
