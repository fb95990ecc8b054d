"""Clear `UserError`s: no name, no model, streaming inside a flow, a model that is not a PrefectModel, a toolset
that cannot be made durable."""

from __future__ import annotations

from typing import Any, cast

import pytest
from prefect import flow
from pydantic_ai import Agent, RunContext
from pydantic_ai.exceptions import UserError
from pydantic_ai.models.test import TestModel
from pydantic_ai.run import AgentRunResultEvent
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.toolsets import AbstractToolset, ExternalToolset, ToolsetTool
from pydantic_core import SchemaValidator, core_schema

from durable_kernel import PYDANTIC_AI_2
from durable_prefect import PrefectAgent, PrefectDurability, PrefectFunctionToolset, PrefectModel

from ._helpers import flow_runs_named, task_runs_of

pytestmark = [pytest.mark.anyio]


def test_agent_without_name_is_refused() -> None:
    with pytest.raises(UserError, match='needs a unique, stable .name.'):
        PrefectAgent(Agent(TestModel()))


def test_name_given_to_the_wrapper_is_enough() -> None:
    assert PrefectAgent(Agent(TestModel()), name='named').name == 'named'


def test_name_cannot_change() -> None:
    agent = PrefectAgent(Agent(TestModel(), name='fixed'))
    with pytest.raises(UserError, match='cannot change'):
        agent.name = 'other'


def test_agent_without_model_is_refused() -> None:
    with pytest.raises(UserError, match='has no model'):
        PrefectAgent(Agent(name='modelless'))


def test_override_with_a_plain_model_is_refused() -> None:
    agent = PrefectAgent(Agent(TestModel(), name='override-refused'))
    with pytest.raises(UserError, match='not a PrefectModel'), agent.override(model=TestModel()):
        pass


@pytest.mark.usefixtures('prefect_server')
async def test_run_with_a_plain_model_is_refused() -> None:
    agent = PrefectAgent(Agent(TestModel(), name='runtime-model'))
    with pytest.raises(UserError, match='not a PrefectModel'):
        await agent.run('hi', model=TestModel())
    with pytest.raises(UserError, match='not a PrefectModel'):
        async with agent.iter('hi', model='test'):
            pass


@pytest.mark.usefixtures('prefect_server')
async def test_run_with_a_prefect_model_uses_it() -> None:
    agent = PrefectAgent(Agent(TestModel(), name='runtime-prefect-model'))
    result = await agent.run('hi', model=PrefectModel(TestModel(custom_output_text='from run')))
    assert result.output == 'from run'


@pytest.mark.usefixtures('prefect_server')
async def test_override_with_a_prefect_model_uses_it_in_tasks() -> None:
    agent = PrefectAgent(Agent(TestModel(), name='override-ok'))
    with agent.override(model=PrefectModel(TestModel(custom_output_text='overridden'))):
        assert (await agent.run('hi')).output == 'overridden'
    assert (await agent.run('hi')).output == 'success (no tool calls)'
    first, _ = sorted(await flow_runs_named('override-ok Run'), key=lambda run: run.expected_start_time or 0)
    [model_task] = await task_runs_of([first.id], expected=1)
    assert model_task.name.startswith('Model Request: test')


@pytest.mark.usefixtures('prefect_server')
async def test_streaming_entry_points_are_refused_inside_a_flow() -> None:
    agent = PrefectAgent(Agent(TestModel(), name='no-stream'))

    @flow
    async def streams_inside() -> list[str]:
        errors: list[str] = []
        try:
            async with agent.run_stream('hi'):
                pass  # pragma: no cover
        except UserError as error:
            errors.append(str(error))
        try:
            agent.run_stream_events('hi')
        except UserError as error:
            errors.append(str(error))
        return errors

    errors = await streams_inside()
    assert len(errors) == 2
    assert '`run_stream()` cannot be used inside a Prefect flow' in errors[0]
    assert '`run_stream_events()` cannot be used inside a Prefect flow' in errors[1]


@pytest.mark.usefixtures('prefect_server')
async def test_realtime_sessions_are_refused_inside_a_flow() -> None:
    """2.x's realtime sessions are live connections a flow cannot record; 1.107 has none."""
    agent = PrefectAgent(Agent(TestModel(), name='no-realtime'))
    if not hasattr(agent, 'realtime'):  # 1.107 has no realtime sessions: nothing to refuse
        assert not PYDANTIC_AI_2
        return

    @flow
    async def opens_a_session() -> str:
        try:
            async with cast(Any, agent).realtime(cast(Any, object())).session():
                pass  # pragma: no cover
        except UserError as error:
            return str(error)
        return 'not refused'  # pragma: no cover

    assert '`agent.realtime(...).session()` cannot be used inside a Prefect flow' in await opens_a_session()


try:  # pydantic-ai 2.78+ only
    from pydantic_ai.external_events import wait_for_external_event  # pyright: ignore[reportMissingImports, reportUnknownVariableType]
except ImportError:  # pragma: no cover - older releases
    wait_for_external_event = None


async def _wait_for_approval() -> str:
    """Instructions that wait for an external event: in flow code, where the wait could not be recorded."""
    assert wait_for_external_event is not None
    answer = await wait_for_external_event('approval', ask=lambda token: 'approved')  # pyright: ignore[reportUnknownVariableType, reportUnknownLambdaType]
    return f'approval: {answer}'  # pragma: no cover - refused before the wait


@pytest.mark.skipif(wait_for_external_event is None, reason='external events exist from pydantic-ai 2.78')
@pytest.mark.parametrize('form', ['capability', 'wrapper'])
@pytest.mark.usefixtures('prefect_server')
async def test_waiting_for_an_external_event_in_a_flow_is_refused(form: str) -> None:
    name = f'external-event-{form}'
    if form == 'capability':
        agent: Any = Agent(TestModel(), name=name, instructions=_wait_for_approval, capabilities=[PrefectDurability()])
    else:
        agent = PrefectAgent(Agent(TestModel(), name=name, instructions=_wait_for_approval))

    @flow(name=f'{name}-flow')
    async def waits() -> str:
        try:
            return (await agent.run('go')).output
        except UserError as error:
            return str(error)

    output = await waits()
    assert '`wait_for_external_event()`' in output
    assert 'not supported inside a Prefect flow' in output
    # Refused before the first model task (the wrapper form runs the agent in a subflow, `<name> Run`).
    runs = [*await flow_runs_named(f'{name}-flow'), *await flow_runs_named(f'{name} Run')]
    assert len(runs) == (1 if form == 'capability' else 2)
    tasks = await task_runs_of([run.id for run in runs])
    assert not [task.name for task in tasks if 'model' in task.name.lower()]


async def test_streaming_outside_a_flow_behaves_like_the_plain_agent() -> None:
    agent = PrefectAgent(Agent(TestModel(custom_output_text='streamed'), name='stream-outside'))
    async with agent.run_stream('hi') as streamed:
        assert await streamed.get_output() == 'streamed'
    events: list[Any] = []
    async with agent.run_stream_events('hi') as stream:
        events.extend([event async for event in stream])
    last = events[-1]
    assert isinstance(last, AgentRunResultEvent)
    assert cast(AgentRunResultEvent[str], last).result.output == 'streamed'


class _HomeMadeToolset(AbstractToolset[None]):
    """A toolset pydantic-ai does not know: its calls could do any I/O."""

    @property
    def id(self) -> str | None:
        return 'home-made'

    async def get_tools(self, ctx: RunContext[None]) -> dict[str, ToolsetTool[None]]:
        tool_def = ToolDefinition(name='weather', parameters_json_schema={'type': 'object', 'properties': {}})
        return {'weather': ToolsetTool(toolset=self, tool_def=tool_def, max_retries=1, args_validator=_NO_ARGUMENTS)}

    async def call_tool(self, name: str, tool_args: dict[str, Any], ctx: RunContext[None], tool: Any) -> Any:
        return 'sunny'


_NO_ARGUMENTS = SchemaValidator(core_schema.dict_schema())


def test_a_toolset_that_cannot_be_made_durable_is_refused_at_construction() -> None:
    message = r'home-made.*_HomeMadeToolset.*cannot be made durable on Prefect.*PrefectFunctionToolset\(toolset\)'
    with pytest.raises(UserError, match=message):
        PrefectAgent(Agent(TestModel(), name='home-made', toolsets=[_HomeMadeToolset()]))
    with pytest.raises(UserError, match=message):
        PrefectAgent(Agent(TestModel(), name='home-made-nested', toolsets=[_HomeMadeToolset().prefixed('x')]))


async def test_a_toolset_given_at_run_time_that_cannot_be_made_durable_is_refused() -> None:
    agent = PrefectAgent(Agent(TestModel(), name='home-made-at-run-time'))
    with pytest.raises(UserError, match='cannot be made durable on Prefect'):
        await agent.run('go', toolsets=[_HomeMadeToolset()])


@pytest.mark.usefixtures('prefect_server')
async def test_the_advice_works_a_wrapped_home_made_toolset_runs_its_calls_in_tasks() -> None:
    toolsets = [PrefectFunctionToolset(_HomeMadeToolset()), ExternalToolset[None]([])]
    agent = PrefectAgent(Agent(TestModel(), name='home-made-wrapped', toolsets=toolsets))
    assert (await agent.run('go')).output == '{"weather":"sunny"}'
    [flow_run] = await flow_runs_named('home-made-wrapped Run')
    names = [run.name.rsplit('-', 1)[0] for run in await task_runs_of([flow_run.id], expected=3)]
    assert names == ['Model Request: test', 'Call Tool: weather', 'Model Request: test']
