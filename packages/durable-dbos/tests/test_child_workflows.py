"""A function tool whose metadata selects a DBOS child workflow runs as one (pydantic-ai 2.68's names), in both forms."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from dbos import DBOS, SetWorkflowID
from pydantic_ai import Agent, Tool
from pydantic_ai.exceptions import UserError
from pydantic_ai.toolsets import FunctionToolset

from durable_dbos import ChildWorkflowConfig, DBOSAgent, DBOSDurability
from durable_dbos.testing import dbos_session
from durable_kernel import PYDANTIC_AI_2, PYDANTIC_AI_VERSION

from .child_crash_app import build
from .conftest import both_backends
from .helpers import call, respond, scripted_model

pytestmark = pytest.mark.anyio

APP = Path(__file__).with_name('child_crash_app.py')
CHILD = {'dbos': {'child_workflow': ChildWorkflowConfig()}}


def _children(steps: list[Any]) -> list[tuple[str, str | None]]:
    """The children a parent started (each also has a `DBOS.getResult` step, waiting for it)."""
    return [
        (step['function_name'], step['child_workflow_id'])
        for step in steps
        if step['child_workflow_id'] is not None and step['function_name'] != 'DBOS.getResult'
    ]


@pytest.mark.parametrize('form', ['wrapper', 'capability'])
async def test_tool_runs_as_child_workflow(
    agent_name: str, dbos_launch: Callable[[], None], tmp_path: Path, form: str
) -> None:
    start = build(agent_name, tmp_path / 'calls.log', crash=False, form=form)
    dbos_launch()
    workflow_id = f'parent-{uuid.uuid4()}'
    with SetWorkflowID(workflow_id):
        output = await start('add things')

    children = _children(await DBOS.list_workflow_steps_async(workflow_id))
    child_name = f'{agent_name}__function_toolset__math.call_tool__child_workflow'
    assert [name for name, _ in children] == [child_name, child_name]
    child_ids = [child_id for _, child_id in children]
    run_prefix = f'{workflow_id}-'
    assert all(child_id is not None and child_id.startswith(run_prefix) for child_id in child_ids)
    # `{parent}-{run_id}-{run_step}-{execution}-{tool_call_id}`, in the calls' order.
    assert [child_id.rsplit('-', 3)[1:] for child_id in child_ids if child_id] == [['1', '0', 'c1'], ['1', '0', 'c2']]
    assert output == f'c1=3 in {child_ids[0]} c2=7 in {child_ids[1]}'
    for child_id in child_ids:
        assert child_id is not None
        status = await DBOS.get_workflow_status_async(child_id)
        assert status is not None
        assert (status.name, status.status) == (child_name, 'SUCCESS')


@both_backends
@pytest.mark.parametrize('form', ['wrapper', 'capability'])
def test_completed_children_are_not_run_again_on_recovery(
    database_url: str, tmp_path: Path, backend: str, form: str
) -> None:
    _crash_and_recover(database_url, tmp_path, form, form)


@pytest.mark.skipif(
    PYDANTIC_AI_VERSION < (2, 68, 0), reason='pydantic-ai 2.68 added child-workflow tools to its DBOSDurability'
)
def test_children_recorded_by_pydantic_ai_durability_are_not_run_again_on_ours(
    database_url: str, tmp_path: Path
) -> None:
    """The reference's parent and children recorded; ours recovers the parent, and takes the children's results."""
    _crash_and_recover(database_url, tmp_path, 'reference', 'capability-sequential')


@pytest.mark.parametrize('form', ['wrapper', 'capability'])
def test_children_recorded_out_of_call_order_are_matched_by_call(database_url: str, tmp_path: Path, form: str) -> None:
    """`c2`'s child recorded before `c1`'s: the recovered calls, which start in call order, each get their own."""
    _crash_and_recover(database_url, tmp_path, f'{form}-reversed', form, recorded_order=['c2', 'c1'])


@pytest.mark.skipif(
    PYDANTIC_AI_VERSION < (2, 68, 0), reason='pydantic-ai 2.68 added child-workflow tools to its DBOSDurability'
)
@pytest.mark.parametrize('attempt', range(4))
def test_parallel_children_recorded_by_pydantic_ai_durability_are_matched_by_call_on_ours(
    database_url: str, tmp_path: Path, attempt: int
) -> None:
    """pydantic-ai 2.78 starts parallel children in either order; ours' parallel calls take each its own back.

    Even attempts force `c2`'s child first (the case that a match by position got wrong); odd ones leave the order to
    the reference's scheduling, and the recovered calls start in call order.
    """
    reversed_ = attempt % 2 == 0
    _crash_and_recover(
        database_url,
        tmp_path,
        'reference-parallel-reversed' if reversed_ else 'reference-parallel',
        'capability',
        recorded_order=['c2', 'c1'] if reversed_ else None,
    )


def _crash_and_recover(
    database_url: str, tmp_path: Path, crash_form: str, form: str, *, recorded_order: list[str] | None = None
) -> None:
    log = tmp_path / 'calls.log'
    name = f'child_crash_{uuid.uuid4().hex[:6]}'
    workflow_id = str(uuid.uuid4())
    crashed = subprocess.run(
        [sys.executable, str(APP), database_url, str(log), name, workflow_id, crash_form],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == 17, crashed.stderr
    lines = log.read_text().splitlines()
    assert [lines[0], sorted(lines[1:3]), lines[3]] == ['model 1', ['tool add 1 2', 'tool add 3 4'], 'model 2']

    # This process is the "new process": launching DBOS on the same database recovers the pending workflow.
    with dbos_session(database_url, reset=False) as launch:
        build(name, log, crash=False, form=form)
        launch()
        result = cast(Any, DBOS.retrieve_workflow(workflow_id).get_result())
        # `DBOSAgent.run`'s workflow returns the run result, the user's workflow its output.
        output = cast(str, result.output if form == 'wrapper' else result)
        children = _children(DBOS.list_workflow_steps(workflow_id))
    # The children completed before the crash: recovery took their recorded results, their bodies did not run again.
    assert log.read_text().splitlines() == [*lines, 'model 2']
    # Each call's result came from its own child (the children may have started, and returned, in either order).
    # Each call got its own child's result (the children may have started, and returned, in either order).
    answers = sorted(re.findall(r'(c\d)=(\d+) in (\S+)', output))
    assert [(call_id, total) for call_id, total, _ in answers] == [('c1', '3'), ('c2', '7')]
    assert all(child_id.endswith(f'-{call_id}') for call_id, _, child_id in answers)
    assert {child_id for _, _, child_id in answers} == {child_id for _, child_id in children}
    if recorded_order is not None:  # the recording the test meant: children at positions out of call order
        assert [child_id.rsplit('-', 1)[1] for _, child_id in children if child_id] == recorded_order


# --- refusals ----------------------------------------------------------------------------------------------------


async def add(a: int, b: int) -> int:
    return a + b  # pragma: no cover - refused


def add_sync(a: int, b: int) -> int:
    return a + b  # pragma: no cover - refused


def test_invalid_child_workflow_config_is_refused(agent_name: str) -> None:
    bad: dict[str, Any] = {'dbos': {'child_workflow': {'workflow_timeout': 5}}}
    with pytest.raises(UserError, match=r"(?s)Invalid DBOS `ChildWorkflowConfig` in tool 'add'.*workflow_timeout"):
        DBOSAgent(
            Agent(scripted_model(), name=agent_name, toolsets=[FunctionToolset([Tool(add, metadata=bad)], id='m')])
        )


def test_other_keys_beside_child_workflow_are_refused(agent_name: str) -> None:
    bad: dict[str, Any] = {'dbos': {'child_workflow': {}, 'retries_allowed': False}}
    # Refused where the capability binds: at `Agent(...)` on pydantic-ai 2.x, at `from_agent` (or the first run) on 1.107.

    def bind() -> None:
        agent = Agent(
            scripted_model(),
            name=agent_name,
            toolsets=[FunctionToolset([Tool(add, metadata=bad)], id='m')],
            capabilities=[DBOSDurability()],
        )
        DBOSDurability.from_agent(agent)

    with pytest.raises(UserError, match=r'`child_workflow` must be the only key'):
        bind()


def test_sync_tool_is_refused(agent_name: str) -> None:
    with pytest.raises(UserError, match=r"'add_sync' selects a DBOS child workflow, but it is a sync function"):
        DBOSAgent(
            Agent(
                scripted_model(), name=agent_name, toolsets=[FunctionToolset([Tool(add_sync, metadata=CHILD)], id='m')]
            )
        )


def test_toolset_without_id_is_refused(agent_name: str) -> None:
    with pytest.raises(UserError, match=r"Tool 'add' selects a DBOS child workflow, but its .* has no `id`"):
        DBOSAgent(Agent(scripted_model(), name=agent_name, toolsets=[FunctionToolset([Tool(add, metadata=CHILD)])]))


async def test_run_time_toolset_selecting_a_child_workflow_is_refused(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    dbos_agent = DBOSAgent(Agent(scripted_model(respond(call('add', {'a': 1, 'b': 2}))), name=agent_name))
    dbos_launch()
    with pytest.raises(UserError, match=r'registered none'):
        await dbos_agent.run('go', toolsets=[FunctionToolset([Tool(add, metadata=CHILD)], id='late')])


async def _wrapper_tool_defs_reach_the_call() -> bool:
    """Whether a toolset wrapping a combined one (a capability's `PreparedToolset`) hands its tool def to the call.

    pydantic-ai 2.33's `CombinedToolset.call_tool` dispatches the tool def it cached at listing time, so metadata a
    capability sets there never reaches the toolset that calls the tool; later 2.x releases hand the wrapper's down.
    """
    from dataclasses import replace

    from pydantic_ai.models.test import TestModel
    from pydantic_ai.tools import RunContext, ToolDefinition
    from pydantic_ai.toolsets import AbstractToolset, CombinedToolset, PreparedToolset, ToolsetTool
    from pydantic_ai.usage import RunUsage

    seen: list[Any] = []

    class Leaf(FunctionToolset[None]):
        async def call_tool(
            self, name: str, tool_args: dict[str, Any], ctx: RunContext[None], tool: ToolsetTool[None]
        ) -> Any:
            seen.append(tool.tool_def.metadata)

    def mark(ctx: RunContext[None], tool_defs: list[ToolDefinition]) -> list[ToolDefinition]:
        return [replace(tool_def, metadata={'marked': True}) for tool_def in tool_defs]

    combined: AbstractToolset[None] = CombinedToolset([Leaf([Tool(add)])])
    outer = PreparedToolset(combined, mark)
    ctx = RunContext[None](deps=None, model=TestModel(), usage=RunUsage())
    tools = await outer.get_tools(ctx)
    await outer.call_tool('add', {'a': 1, 'b': 2}, ctx, tools['add'])
    return seen == [{'marked': True}]


@pytest.mark.skipif(not PYDANTIC_AI_2, reason='SetToolMetadata is a pydantic-ai 2.x capability')
async def test_set_tool_metadata_selecting_a_child_workflow_is_refused(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    """A capability's metadata is not read when the workflows are registered: the call says so instead of not running."""
    from pydantic_ai.capabilities import SetToolMetadata

    if not await _wrapper_tool_defs_reach_the_call():
        pytest.skip("the installed pydantic-ai (2.33) does not hand a capability's tool metadata to the tool's call")

    dbos_agent = DBOSAgent(
        Agent(
            scripted_model(respond(call('add', {'a': 1, 'b': 2}))),
            name=agent_name,
            toolsets=[FunctionToolset([Tool(add)], id='m')],
            capabilities=[SetToolMetadata(dbos={'child_workflow': {}})],
        )
    )
    dbos_launch()
    with pytest.raises(UserError, match=r'registered none'):
        await dbos_agent.run('go')
