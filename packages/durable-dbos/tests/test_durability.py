"""`DBOSDurability`, the capability form: the user's own `@DBOS.workflow()` runs an agent that carries it.

Step names are pydantic-ai 2.x's for the capability form (persisted data): `X__model.request[_stream]`,
`X__event_stream_handler` (one per workflow-side event), `X__mcp_server__M.*`; function tools are workflow code.
"""

from __future__ import annotations

import inspect
import logging
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterable, Callable
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
from dbos import DBOS, SetWorkflowID
from pydantic_ai import Agent, RunContext
from pydantic_ai.agent import AgentRunResult
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import AgentStreamEvent
from pydantic_ai.models.test import TestModel

from durable_dbos import DBOSDurability, DBOSParallelExecutionMode
from durable_dbos.testing import dbos_session, workflow_step_names, workflow_step_names_async
from durable_kernel import PYDANTIC_AI_2
from durable_kernel._compat import ACTIVE_CAPABILITIES_SNAPSHOT

from . import crash_app, durability_app
from .conftest import both_backends
from .helpers import call, respond, scripted_model
from .test_mcp import RecordingModel, make_server

pytestmark = pytest.mark.anyio


def weather_agent(name: str, calls: list[str], durability: DBOSDurability[None] | None = None) -> Agent[None, str]:
    agent = Agent(TestModel(), name=name, capabilities=[durability or DBOSDurability()])

    @agent.tool_plain
    def get_weather(city: str) -> str:
        calls.append(city)
        return f'sunny in {city}'

    return agent


def run_workflow(name: str, agent: Agent[None, str]) -> Callable[..., Any]:
    """The user's workflow: `agent.run` inside `@DBOS.workflow()` (registered before launch)."""

    @DBOS.workflow(name=f'{name}.user_workflow')
    async def user_workflow(prompt: str, **kwargs: Any) -> str:
        return (await agent.run(prompt, **kwargs)).output

    return user_workflow


async def run_in_workflow(workflow: Callable[..., Any], prompt: str, **kwargs: Any) -> tuple[str, list[str]]:
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        output = await workflow(prompt, **kwargs)
    return output, await workflow_step_names_async(workflow_id)


@both_backends
async def test_run_in_workflow_has_model_steps_and_runs_function_tools_as_workflow_code(
    agent_name: str, dbos_launch: Callable[[], None], backend: str
) -> None:
    calls: list[str] = []
    agent = weather_agent(agent_name, calls)
    workflow = run_workflow(agent_name, agent)
    dbos_launch()

    output, steps = await run_in_workflow(workflow, 'weather?')

    assert output == '{"get_weather":"sunny in a"}'
    assert calls == ['a']
    # As pydantic-ai 2.x's `DBOSDurability`: function tools are not steps.
    assert steps == [f'{agent_name}__model.request', f'{agent_name}__model.request']


async def test_function_tool_steps_make_tool_calls_steps(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    calls: list[str] = []
    agent = weather_agent(agent_name, calls, DBOSDurability(function_tool_steps=True))
    workflow = run_workflow(agent_name, agent)
    dbos_launch()

    output, steps = await run_in_workflow(workflow, 'weather?')

    assert output == '{"get_weather":"sunny in a"}'
    assert steps == [
        f'{agent_name}__model.request',
        f'{agent_name}__toolset__<agent>.call_tool.get_weather',
        f'{agent_name}__model.request',
    ]


async def test_streamed_run_with_event_stream_handler(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    seen: list[tuple[str, bool]] = []

    async def handler(ctx: RunContext[None], stream: AsyncIterable[AgentStreamEvent]) -> None:
        async for event in stream:
            # Where the handler ran: inside a step (the model step or its own event step), never as workflow code.
            seen.append((event.event_kind, DBOS.step_id is not None))

    model = scripted_model(respond(call('get_weather', {'city': 'Paris'})), respond('done'))
    agent = Agent(model, name=agent_name, capabilities=[DBOSDurability(event_stream_handler=handler)])

    @agent.tool_plain
    def get_weather(city: str) -> str:
        return f'sunny in {city}'

    workflow = run_workflow(agent_name, agent)
    dbos_launch()

    output, steps = await run_in_workflow(workflow, 'weather?')

    assert output == 'done'
    assert steps == [
        f'{agent_name}__model.request_stream',
        f'{agent_name}__event_stream_handler',
        f'{agent_name}__event_stream_handler',
        f'{agent_name}__model.request_stream',
    ]
    kinds = [kind for kind, _ in seen]
    assert kinds.count('function_tool_call') == 1
    assert kinds.count('function_tool_result') == 1
    assert 'part_start' in kinds
    assert all(in_step for _, in_step in seen)


async def test_models_selects_a_registered_model_and_refuses_others(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    other = TestModel(custom_output_text='from the other model')
    agent = Agent(
        TestModel(custom_output_text='from the default'),
        name=agent_name,
        capabilities=[DBOSDurability(models={'other': other})],
    )
    workflow = run_workflow(agent_name, agent)
    dbos_launch()

    assert await run_in_workflow(workflow, 'hi') == ('from the default', [f'{agent_name}__model.request'])
    assert await run_in_workflow(workflow, 'hi', model=other) == (
        'from the other model',
        [f'{agent_name}__model.request'],
    )
    with pytest.raises(UserError, match=r'neither the agent.s default model nor registered'):
        await run_in_workflow(workflow, 'hi', model=TestModel())


async def test_outside_a_workflow_nothing_changes(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    seen: list[str] = []

    async def handler(ctx: RunContext[None], stream: AsyncIterable[AgentStreamEvent]) -> None:
        async for event in stream:
            assert DBOS.workflow_id is None
            seen.append(event.event_kind)

    calls: list[str] = []
    agent = weather_agent(agent_name, calls, DBOSDurability(event_stream_handler=handler))
    dbos_launch()

    result = await agent.run('weather?')

    assert result.output == '{"get_weather":"sunny in a"}'
    assert calls == ['a']
    assert 'function_tool_call' in seen
    assert 'function_tool_result' in seen
    assert await DBOS.list_workflows_async() == []
    # Bound, not wrapped: the agent keeps its own model and toolsets.
    assert DBOSDurability.from_agent(agent).agent is agent


@pytest.mark.parametrize(('mode', 'max_in_flight'), [('parallel_ordered_events', 2), ('sequential', 1)])
async def test_parallel_execution_mode_applies_inside_the_workflow(
    agent_name: str, dbos_launch: Callable[[], None], mode: DBOSParallelExecutionMode, max_in_flight: int
) -> None:
    model = scripted_model(respond(call('first', {}, 'c1'), call('second', {}, 'c2')), respond('done'))
    agent = Agent(model, name=agent_name, capabilities=[DBOSDurability(parallel_execution_mode=mode)])
    in_flight: list[str] = []
    seen_max = 0
    started = {'first': anyio.Event(), 'second': anyio.Event()}

    async def tool(name: str, other: str) -> str:
        nonlocal seen_max
        in_flight.append(name)
        seen_max = max(seen_max, len(in_flight))
        started[name].set()
        if mode == 'parallel_ordered_events':
            # Only concurrent calls get past this (the guard fails the test instead of hanging it).
            with anyio.fail_after(60):
                await started[other].wait()
        await anyio.sleep(0.05)
        in_flight.remove(name)
        return name

    @agent.tool_plain
    async def first() -> str:
        return await tool('first', 'second')

    @agent.tool_plain
    async def second() -> str:
        return await tool('second', 'first')

    workflow = run_workflow(agent_name, agent)
    dbos_launch()

    assert await run_in_workflow(workflow, 'go') == ('done', [f'{agent_name}__model.request'] * 2)
    assert seen_max == max_in_flight


def test_unbound_legacy_workflows_are_named_at_launch(
    agent_name: str, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """On pydantic-ai 1.107 nothing binds the capability before its first run unless `from_agent` is called."""
    durability = DBOSDurability[None](name=agent_name, register_legacy_workflows=True)
    with caplog.at_level(logging.WARNING, logger='durable_dbos'), dbos_session(database_url) as launch:
        launch()
        # The check runs on a DBOS background thread once launched (generous: a loaded machine).
        deadline = time.monotonic() + 60
        while agent_name not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
    assert f'register_legacy_workflows=True)` (name={agent_name!r}) was not bound' in caplog.text
    assert 'DBOSDurability.from_agent(agent)` before `DBOS.launch()`' in caplog.text
    assert durability.agent is None


def bind(**agent_kwargs: Any) -> DBOSDurability[None] | None:
    """Build an agent and bind its capability: pydantic-ai 2.x binds in `Agent(...)`, 1.107 in `from_agent`."""
    return DBOSDurability.from_agent(Agent(TestModel(), **agent_kwargs))


def test_agent_without_name_is_refused() -> None:
    with pytest.raises(UserError, match=r'needs a unique `name`, the same in every deploy.*DBOSDurability'):
        bind(capabilities=[DBOSDurability()])


def test_two_durability_capabilities_are_refused(agent_name: str) -> None:
    with pytest.raises(UserError, match=r'several durability capabilities'):
        bind(name=agent_name, capabilities=[DBOSDurability(), DBOSDurability()])


def test_parallel_mode_that_reorders_events_is_refused() -> None:
    with pytest.raises(UserError, match=r"parallel_execution_mode='parallel'"):
        DBOSDurability(parallel_execution_mode='parallel')  # type: ignore[arg-type]


def test_explicit_name_names_the_steps_of_an_unnamed_agent() -> None:
    agent = Agent(TestModel(), capabilities=[DBOSDurability(name='explicit')])
    assert DBOSDurability.from_agent(agent).name == 'explicit'


def test_legacy_workflows_bound_after_launch_are_named_in_a_warning(
    agent_name: str, dbos_launch: Callable[[], None], caplog: pytest.LogCaptureFixture
) -> None:
    """DBOS recovered pending workflows at launch without them; new legacy runs still work."""
    dbos_launch()
    with caplog.at_level(logging.WARNING, logger='durable_dbos'):
        durability = bind(name=agent_name, capabilities=[DBOSDurability(register_legacy_workflows=True)])
    assert durability is not None
    assert durability.legacy_run_workflow is not None
    assert f'of the agent {agent_name!r} was bound after `DBOS.launch()`' in caplog.text
    assert 'DBOSDurability.from_agent(agent)` before `DBOS.launch()`' in caplog.text


def test_agent_without_model_is_refused(agent_name: str) -> None:
    with pytest.raises(UserError, match=r'needs to have a `model` to be used with DBOSDurability'):
        DBOSDurability.from_agent(Agent(name=agent_name, capabilities=[DBOSDurability()]))


async def test_legacy_workflows_are_registered_by_from_agent(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    """`X.run` and `X.run_sync` of `DBOSAgent` exist once bound (at `Agent(...)` on 2.x, by `from_agent` on 1.107)."""
    calls: list[str] = []
    agent = weather_agent(agent_name, calls, DBOSDurability(register_legacy_workflows=True))
    durability = DBOSDurability.from_agent(agent)
    dbos_launch()

    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        result = await durability.legacy_run_workflow('weather?')

    assert result.output == '{"get_weather":"sunny in a"}'
    status = await DBOS.get_workflow_status_async(workflow_id)
    assert status is not None
    assert status.name == f'{agent_name}.run'
    assert await workflow_step_names_async(workflow_id) == [f'{agent_name}__model.request'] * 2


@pytest.mark.timeout(300)
async def test_mcp_toolset_steps(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    recording = RecordingModel()
    agent = Agent(
        recording.model, name=agent_name, toolsets=[make_server('MCPToolset')], capabilities=[DBOSDurability()]
    )
    workflow = run_workflow(agent_name, agent)
    dbos_launch()

    output, steps = await run_in_workflow(workflow, 'go')

    assert output == 'done'
    prefix = f'{agent_name}__mcp_server__calc'
    assert steps == [
        f'{prefix}.get_tools',
        f'{prefix}.get_instructions',
        f'{agent_name}__model.request',
        f'{prefix}.call_tool',
        f'{prefix}.call_tool',
        f'{agent_name}__model.request',
    ]


def _crash(app: Path, *args: str) -> None:
    crashed = subprocess.run([sys.executable, str(app), *args], capture_output=True, text=True, timeout=180)
    assert crashed.returncode == 17, crashed.stderr


@both_backends
def test_workflow_killed_mid_run_recovers_without_repeating_recorded_steps(
    database_url: str, tmp_path: Path, backend: str
) -> None:
    _crash_and_recover(database_url, tmp_path, 'ours')


@pytest.mark.skipif(not PYDANTIC_AI_2, reason="pydantic-ai 2.x's own `DBOSDurability` records the workflow")
def test_workflow_recorded_by_pydantic_ai_durability_recovers_on_ours(database_url: str, tmp_path: Path) -> None:
    """Same step names, same step outputs: a workflow pydantic-ai 2.x's `DBOSDurability` started finishes on ours."""
    _crash_and_recover(database_url, tmp_path, 'reference')


RECORDED_BY_2_68 = Path(__file__).with_name('fixtures') / 'durability-recorded-by-pydantic-ai-2.68.0.sqlite'
"""A workflow started by pydantic-ai 2.68.0's own `DBOSDurability` (durability_app.py, agent `durability_recorded`,
workflow `recorded-by-pydantic-ai-2`) and killed in its second model request, after the first model request and the
handler's four event steps were recorded; its two tool calls ran as workflow code. Recorded with
`durability_app.py sqlite:///FILE LOG durability_recorded recorded-by-pydantic-ai-2 reference` in the pai2 cell."""


@pytest.mark.skipif(not PYDANTIC_AI_2, reason='the step outputs are pydantic-ai 2.x objects')
def test_workflow_recorded_by_pydantic_ai_2_68_recovers_on_ours(tmp_path: Path) -> None:
    """The committed record pins 2.68's format, whatever 2.x release the pai2 cell resolves today."""
    import shutil

    database = tmp_path / 'dbos.sqlite'
    shutil.copyfile(RECORDED_BY_2_68, database)
    log = tmp_path / 'calls.log'
    with dbos_session(f'sqlite:///{database}', reset=False) as launch:
        durability_app.build('durability_recorded', log, crash=False)
        launch()  # recovers the recorded workflow
        output = cast(str, DBOS.retrieve_workflow('recorded-by-pydantic-ai-2').get_result())
        steps = workflow_step_names('recorded-by-pydantic-ai-2')

    assert output == '3 7'
    # Recorded: model request 1 and the four event steps. Workflow code again: the two tool calls; then the request
    # the worker died in.
    assert sorted(log.read_text().splitlines()) == ['model 2', 'tool add 1 2', 'tool add 3 4']
    assert steps == [
        'durability_recorded__model.request_stream',
        *['durability_recorded__event_stream_handler'] * 4,
        'durability_recorded__model.request_stream',
    ]


RECORDED_DYNAMIC_BY_2_78 = (
    Path(__file__).with_name('fixtures') / 'durability-dynamic-recorded-by-pydantic-ai-2.78.0.sqlite'
)
"""A workflow started by pydantic-ai 2.78.0's own `DBOSDurability` whose `add` tool comes from a dynamic toolset
(durability_app.py with `dynamic`, agent `dyn_recorded`, workflow `dynamic-recorded-by-pydantic-ai-2`), killed in its
second model request: the toolset's two listings (one per run step), both tool calls, the first model request and the
handler's four event steps were recorded. Recorded with
`durability_app.py sqlite:///FILE LOG dyn_recorded dynamic-recorded-by-pydantic-ai-2 reference dynamic` in the
pai2-newest cell (pydantic-ai 2.78.0)."""

DYNAMIC_RECORDED_STEPS = [
    'dynamic_toolset__adders.get_tools',
    'model.request_stream',
    *['event_stream_handler'] * 2,
    *['dynamic_toolset__adders.call_tool'] * 2,
    *['event_stream_handler'] * 2,
    'dynamic_toolset__adders.get_tools',
]


@pytest.mark.skipif(not PYDANTIC_AI_2, reason='the step outputs are pydantic-ai 2.x objects')
def test_dynamic_toolset_steps_recorded_by_pydantic_ai_2_78_recover_on_ours(tmp_path: Path) -> None:
    """A dynamic toolset's listing and tool-call steps recorded by 2.78 are read by ours: nothing recorded runs again.

    2.78 records the listing as its own `DynamicToolsResult` object (DBOS pickles step outputs), which ours reads by
    its attributes (`tools`, each tool's `tool_def` and `max_retries`, `instructions`).
    """
    import shutil

    database = tmp_path / 'dbos.sqlite'
    shutil.copyfile(RECORDED_DYNAMIC_BY_2_78, database)
    log = tmp_path / 'calls.log'
    workflow_id = 'dynamic-recorded-by-pydantic-ai-2'
    with dbos_session(f'sqlite:///{database}', reset=False) as launch:
        durability_app.build('dyn_recorded', log, crash=False, tools='dynamic')
        launch()  # recovers the recorded workflow
        output = cast(str, DBOS.retrieve_workflow(workflow_id).get_result())
        steps = workflow_step_names(workflow_id)

    assert output == '3 7'
    # Only the request the worker died in runs again: the toolset is not built again (its listings and calls were
    # recorded), and no tool runs again.
    assert log.read_text().splitlines() == ['model 2']
    assert steps == [f'dyn_recorded__{step}' for step in [*DYNAMIC_RECORDED_STEPS, 'model.request_stream']]


@pytest.mark.skipif(not PYDANTIC_AI_2, reason="pydantic-ai 2.x's own `DBOSDurability` records the workflow")
def test_dynamic_toolset_workflow_recorded_by_pydantic_ai_durability_recovers_on_ours(
    database_url: str, tmp_path: Path
) -> None:
    """The same with the installed pydantic-ai 2.x's `DBOSDurability` recording the workflow, and ours resuming it."""
    log = tmp_path / 'calls.log'
    name = f'dyn_{uuid.uuid4().hex[:6]}'
    workflow_id = str(uuid.uuid4())
    app = Path(__file__).with_name('durability_app.py')
    _crash(app, database_url, str(log), name, workflow_id, 'reference', 'dynamic')
    before = log.read_text().splitlines()
    assert before[-1] == 'model 2'
    assert sorted(line for line in before if line.startswith('tool add')) == ['tool add 1 2', 'tool add 3 4']

    with dbos_session(database_url, reset=False) as launch:
        durability_app.build(name, log, crash=False, tools='dynamic')
        launch()  # recovers the killed workflow
        output = cast(str, DBOS.retrieve_workflow(workflow_id).get_result())
        steps = workflow_step_names(workflow_id)

    assert output == '3 7'
    assert log.read_text().splitlines()[len(before) :] == ['model 2']
    assert steps == [f'{name}__{step}' for step in [*DYNAMIC_RECORDED_STEPS, 'model.request_stream']]


RECORDED_MCP_BY_2_78 = Path(__file__).with_name('fixtures') / 'durability-mcp-recorded-by-pydantic-ai-2.78.0.sqlite'
"""A workflow started by pydantic-ai 2.78.0's own `DBOSDurability` whose `add` tool is on an MCP server (tests/
mcp_server.py over stdio, id `calc`), killed in its second model request: the server's listing, both tool calls, the
first model request and the handler's four event steps were recorded. Recorded with
`durability_app.py sqlite:///FILE LOG mcp_recorded mcp-recorded-by-pydantic-ai-2 reference mcp` in the pai2-newest
cell (pydantic-ai 2.78.0)."""

MCP_RECORDED_STEPS = [
    'mcp_server__calc.get_tools',
    'model.request_stream',
    *['event_stream_handler'] * 2,
    *['mcp_server__calc.call_tool'] * 2,
    *['event_stream_handler'] * 2,
]


@pytest.mark.skipif(not PYDANTIC_AI_2, reason='the step outputs are pydantic-ai 2.x objects')
def test_mcp_steps_recorded_by_pydantic_ai_2_78_recover_on_ours(tmp_path: Path) -> None:
    """An MCP server's listing and tool-call steps recorded by 2.78 are read by ours: the server is not called again."""
    import shutil

    database = tmp_path / 'dbos.sqlite'
    shutil.copyfile(RECORDED_MCP_BY_2_78, database)
    log = tmp_path / 'calls.log'
    workflow_id = 'mcp-recorded-by-pydantic-ai-2'
    with dbos_session(f'sqlite:///{database}', reset=False) as launch:
        durability_app.build('mcp_recorded', log, crash=False, tools='mcp')
        launch()  # recovers the recorded workflow
        output = cast(str, DBOS.retrieve_workflow(workflow_id).get_result())
        steps = workflow_step_names(workflow_id)

    assert output == '3 7'
    assert log.read_text().splitlines() == ['model 2']  # no `add` reached the server again
    assert steps == [f'mcp_recorded__{step}' for step in [*MCP_RECORDED_STEPS, 'model.request_stream']]


@pytest.mark.skipif(not PYDANTIC_AI_2, reason="pydantic-ai 2.x's own `DBOSDurability` records the workflow")
def test_mcp_workflow_recorded_by_pydantic_ai_durability_recovers_on_ours(database_url: str, tmp_path: Path) -> None:
    """The same with the installed pydantic-ai 2.x's `DBOSDurability` recording the workflow, and ours resuming it."""
    log = tmp_path / 'calls.log'
    name = f'mcp_{uuid.uuid4().hex[:6]}'
    workflow_id = str(uuid.uuid4())
    _crash(Path(__file__).with_name('durability_app.py'), database_url, str(log), name, workflow_id, 'reference', 'mcp')
    before = log.read_text().splitlines()
    assert before[-1] == 'model 2'
    assert sorted(line for line in before if line.startswith('add')) == ['add 1 2', 'add 3 4']

    with dbos_session(database_url, reset=False) as launch:
        durability_app.build(name, log, crash=False, tools='mcp')
        launch()  # recovers the killed workflow
        output = cast(str, DBOS.retrieve_workflow(workflow_id).get_result())
        steps = workflow_step_names(workflow_id)

    assert output == '3 7'
    assert log.read_text().splitlines()[len(before) :] == ['model 2']
    assert steps == [f'{name}__{step}' for step in [*MCP_RECORDED_STEPS, 'model.request_stream']]


def _crash_and_recover(database_url: str, tmp_path: Path, impl: str) -> None:
    log = tmp_path / 'calls.log'
    name = f'durability_{uuid.uuid4().hex[:6]}'
    workflow_id = str(uuid.uuid4())
    _crash(Path(__file__).with_name('durability_app.py'), database_url, str(log), name, workflow_id, impl)
    before = log.read_text().splitlines()
    tool_events = ['event function_tool_call'] * 2 + ['event function_tool_result'] * 2
    assert before[0] == 'model 1'
    assert before[-1] == 'model 2'
    assert [line for line in before if line.startswith('event')] == tool_events

    with dbos_session(database_url, reset=False) as launch:
        durability_app.build(name, log, crash=False)
        launch()  # recovers the killed workflow
        output = cast(str, DBOS.retrieve_workflow(workflow_id).get_result())
        steps = workflow_step_names(workflow_id)

    assert output == '3 7'
    after = log.read_text().splitlines()[len(before) :]
    # The first model request and the handler's event steps were recorded: not repeated. The tools ran as workflow
    # code (as on pydantic-ai 2.x), so the recovered run calls them again.
    assert sorted(after) == ['model 2', 'tool add 1 2', 'tool add 3 4']
    assert steps == [
        f'{name}__model.request_stream',
        *[f'{name}__event_stream_handler'] * 4,
        f'{name}__model.request_stream',
    ]


def test_dbos_agent_workflow_recovers_with_legacy_workflows(database_url: str, tmp_path: Path) -> None:
    """A workflow `DBOSAgent` started (with its tool steps) finishes on an agent that carries the capability instead."""
    log = tmp_path / 'calls.log'
    name = f'legacy_{uuid.uuid4().hex[:6]}'
    workflow_id = str(uuid.uuid4())
    _crash(Path(__file__).with_name('crash_app.py'), database_url, str(log), name, workflow_id, 'run')
    before = log.read_text().splitlines()

    with dbos_session(database_url, reset=False) as launch:
        durability = DBOSDurability[crash_app.Deps](register_legacy_workflows=True)
        agent = crash_app.build_plain_agent(name, log, crash=False, capabilities=[durability])
        # pydantic-ai 1.107 binds lazily: registering the legacy workflows needs the binding before launch.
        DBOSDurability.from_agent(agent)
        launch()
        result = cast(AgentRunResult[str], DBOS.retrieve_workflow(workflow_id).get_result())
        steps = workflow_step_names(workflow_id)

    assert result.output == '3 7 (base 10)'
    assert log.read_text().splitlines() == [*before, 'model 2']
    # The recorded layout decides: the tool calls were steps, so they are replayed as steps, not run again.
    assert steps == [
        f'{name}__model.request',
        f'{name}__toolset__<agent>.call_tool.add',
        f'{name}__toolset__<agent>.call_tool.add',
        f'{name}__model.request',
    ]


@pytest.mark.skipif(
    'capabilities' not in inspect.signature(Agent.override).parameters,
    reason='`override(capabilities=...)` exists from pydantic-ai 2.78',
)
async def test_an_override_that_drops_the_durability_is_refused(agent_name: str, dbos_launch: Callable[[], None]):
    calls: list[str] = []
    agent = weather_agent(agent_name, calls)
    workflow = run_workflow(agent_name, agent)
    dbos_launch()
    root: Any = cast(Any, agent).root_capability

    with (
        pytest.raises(UserError, match=r"leaves out the agent's `DBOSDurability`: runs inside the block would not"),
        cast(Any, agent).override(capabilities=[]),
    ):
        pass  # pragma: no cover
    with (
        pytest.raises(UserError, match=r"leaves out the agent's `DBOSDurability`"),
        cast(Any, agent).override(capabilities=[DBOSDurability()]),
    ):
        pass  # pragma: no cover

    # Keeping the agent's own capabilities (entered outside the workflow, carried into it): still durable.
    with cast(Any, agent).override(capabilities=[*root.capabilities]):
        output, steps = await run_in_workflow(workflow, 'weather?')
    assert output == '{"get_weather":"sunny in a"}'
    assert steps == [f'{agent_name}__model.request', f'{agent_name}__model.request']


async def test_a_capability_loaded_in_the_run_is_available_in_the_tool_step_after(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    # A step runs in the workflow's process with the live run context: the availability the run computes (the tools
    # revealed, the capabilities loaded) is what the tool reads, with no snapshot to send (Temporal's case).
    from pydantic_ai.capabilities import Capability
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel
    from pydantic_ai.toolsets import FunctionToolset

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
        # The property's name on the installed line (2.33 still has 1.107's `available_capability_ids`).
        seen['capabilities'] = set(getattr(ctx, ACTIVE_CAPABILITIES_SNAPSHOT))
        return 'refunded'

    billing = Capability[None](
        id='billing', defer_loading=True, toolsets=[FunctionToolset([refund], id=f'{agent_name}_billing')]
    )
    agent = Agent(
        FunctionModel(script),
        name=agent_name,
        capabilities=[billing, DBOSDurability(function_tool_steps=True)],
    )
    workflow = run_workflow(agent_name, agent)
    dbos_launch()

    output, steps = await run_in_workflow(workflow, 'refund')

    assert output == 'done'
    assert f'{agent_name}__toolset__{agent_name}_billing.call_tool.refund' in steps
    assert {'refund', 'load_capability'} <= seen['tools']
    assert 'billing' in seen['capabilities']
