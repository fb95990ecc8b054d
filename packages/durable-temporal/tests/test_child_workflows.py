"""A function tool whose metadata selects a child workflow runs as one (pydantic-ai 2.68's names), in both forms."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from core_helpers import WORKFLOW_TIMEOUT, activity_names
from pydantic_ai import Agent, Tool
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.toolsets import FunctionToolset
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory
from temporalio.common import RetryPolicy
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.workflow import ChildWorkflowConfig

from durable_kernel import PYDANTIC_AI_2, PYDANTIC_AI_VERSION
from durable_temporal import AgentPlugin, PydanticAIPlugin, PydanticAIWorkflow, TemporalAgent, TemporalDurability
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio

PYDANTIC_AI_2_68 = PYDANTIC_AI_VERSION >= (2, 68, 0)

CHILD = {'temporal': {'child_workflow': ChildWorkflowConfig(execution_timeout=timedelta(seconds=60))}}

# The crash test's workflows run unsandboxed: its workflow code, the tool and the model share this module's state.
TOOL_RUNS: list[str] = []
SECOND_REQUEST_MAY_FINISH = asyncio.Event()


async def where(topic: str) -> str:
    """Say where the tool body ran: a child workflow's id and its parent's."""
    TOOL_RUNS.append(topic)
    info = workflow.info()
    assert info.parent is not None
    return f'{topic}: ran in {info.workflow_type} {info.workflow_id}, child of {info.parent.workflow_id}'


async def plain(topic: str) -> str:
    """A tool that keeps its activity."""
    return f'plain {topic}'


def call_both(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    if len(messages) == 1:
        return ModelResponse(parts=[ToolCallPart('where', {'topic': 'a'}), ToolCallPart('plain', {'topic': 'b'})])
    returns = [p.content for m in messages for p in m.parts if isinstance(p, ToolReturnPart)]
    return ModelResponse(parts=[TextPart(' | '.join(str(r) for r in returns))])


def _toolset(toolset_id: str) -> FunctionToolset[Any]:
    return FunctionToolset([Tool(where, metadata=CHILD), Tool(plain)], id=toolset_id)


AGENTS: dict[str, Any] = {
    'capability': Agent(
        FunctionModel(call_both), name='kids_cap', toolsets=[_toolset('kids')], capabilities=[TemporalDurability()]
    ),
    'wrapper': TemporalAgent(Agent(FunctionModel(call_both), name='kids_wrap', toolsets=[_toolset('kids')])),
}


@workflow.defn
class ChildToolWorkflow(PydanticAIWorkflow):
    __pydantic_ai_agents__ = list(AGENTS.values())

    @workflow.run
    async def run(self, which: str) -> str:
        return (await AGENTS[which].run('go')).output


async def _child_starts(client: Client, workflow_id: str) -> list[tuple[str, str]]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return [
        (
            event.start_child_workflow_execution_initiated_event_attributes.workflow_type.name,
            event.start_child_workflow_execution_initiated_event_attributes.workflow_id,
        )
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    ]


@pytest.mark.parametrize('which', ['capability', 'wrapper'])
async def test_tool_runs_as_child_workflow(client: Client, task_queue: str, which: str) -> None:
    """Sandboxed, registered through `__pydantic_ai_agents__`: the tool body is the child's workflow code."""
    name = 'kids_cap' if which == 'capability' else 'kids_wrap'
    workflow_id = f'child-{which}-{uuid.uuid4()}'
    async with agent_worker(client, workflows=[ChildToolWorkflow], task_queue=task_queue):
        output = await client.execute_workflow(
            ChildToolWorkflow.run, which, id=workflow_id, task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
        )
    child_type = f'agent__{name}__toolset__kids__call_tool__child_workflow'
    [(started_type, child_id)] = await _child_starts(client, workflow_id)
    assert started_type == child_type
    assert child_id.startswith(f'{workflow_id}--')
    assert output == f'a: ran in {child_type} {child_id}, child of {workflow_id} | plain b'
    # The other tool keeps its activity; the child tool has none in the parent.
    handle = client.get_workflow_handle(workflow_id)
    assert f'agent__{name}__toolset__kids__call_tool' in await activity_names(client, handle)
    if os.environ.get('RECORD_CHILD_HISTORIES') and not PYDANTIC_AI_2:
        recorded = await handle.fetch_history()
        LINE_HISTORIES[which].write_text(json.dumps(json.loads(recorded.to_json()), indent=1) + '\n')


LINE_HISTORIES = {
    which: Path(__file__).parent / 'histories' / 'ours' / f'child_workflow_{which}_1.107.json'
    for which in ('capability', 'wrapper')
}
"""Runs of `ChildToolWorkflow` by ours on pydantic-ai 1.107, in each form (written by the test above on 1.107 when
`RECORD_CHILD_HISTORIES=1`): a child-workflow tool with its default id, and an activity tool, called in parallel."""


@pytest.mark.parametrize('which', ['capability', 'wrapper'])
async def test_a_history_recorded_on_pydantic_ai_1_107_replays_on_this_line(which: str) -> None:
    """A run moved between pydantic-ai 1.107 and 2.x replays: both draw the same default child id.

    pydantic-ai 2.x draws a UUID for the run's default `run_id` (under `pydantic_ai:stable_default_run_id`), and ours on
    1.107 draws it too, unused, so the next UUID, the child's id, is the same on both lines. The other direction is
    `test_a_history_recorded_by_the_reference_replays_on_ours` on 1.107 (a 2.78 history).
    """
    text = LINE_HISTORIES[which].read_text()
    parent_id = re.findall(rf'"workflowId": "(child-{which}-[^"]+)"', text)[0]
    [child_id] = re.findall(rf'"workflowId": "({re.escape(parent_id)}--[^"]+)"', text)[:1]
    assert child_id != parent_id
    replayer = Replayer(workflows=[ChildToolWorkflow], plugins=[PydanticAIPlugin()])
    await replayer.replay_workflow(WorkflowHistory.from_json(parent_id, text))


# --- a worker restart after the child completed ------------------------------------------------------------------


async def call_then_wait(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    if len(messages) == 1:
        return ModelResponse(parts=[ToolCallPart('where', {'topic': 'once'})])
    # The second request waits on the first worker: it is stopped there, and a second worker finishes the run.
    await SECOND_REQUEST_MAY_FINISH.wait()
    return ModelResponse(parts=[TextPart('finished')])


RESTART_AGENTS: dict[str, Any] = {
    'capability': Agent(
        FunctionModel(call_then_wait),
        name='kids_restart_cap',
        toolsets=[FunctionToolset([Tool(where, metadata=CHILD)], id='kids')],
        capabilities=[TemporalDurability()],
    ),
    'wrapper': TemporalAgent(
        Agent(
            FunctionModel(call_then_wait),
            name='kids_restart_wrap',
            toolsets=[FunctionToolset([Tool(where, metadata=CHILD)], id='kids')],
        ),
        activity_config={
            'start_to_close_timeout': timedelta(seconds=60),
            'retry_policy': RetryPolicy(maximum_attempts=5),
        },
    ),
}


@workflow.defn
class RestartWorkflow:
    @workflow.run
    async def run(self, which: str) -> str:
        return (await RESTART_AGENTS[which].run('go')).output


@pytest.mark.parametrize('which', ['capability', 'wrapper'])
async def test_completed_child_is_not_run_again_after_a_restart(client: Client, task_queue: str, which: str) -> None:
    """A new worker (empty workflow cache: the parent replays from its history) does not run the child again."""
    TOOL_RUNS.clear()
    SECOND_REQUEST_MAY_FINISH.clear()
    agent = RESTART_AGENTS[which]
    workflow_id = f'child-restart-{which}-{uuid.uuid4()}'
    options: dict[str, Any] = {
        'workflows': [RestartWorkflow],
        'plugins': [AgentPlugin(agent)],
        'task_queue': task_queue,
        'workflow_runner': UnsandboxedWorkflowRunner(),
        'graceful_shutdown_timeout': timedelta(seconds=1),
    }
    async with agent_worker(client, **options):
        handle = await client.start_workflow(
            RestartWorkflow.run, which, id=workflow_id, task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
        )
        # Until the second model request is running: the child has completed.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(handle.result(), timeout=3)
        assert TOOL_RUNS == ['once']
    SECOND_REQUEST_MAY_FINISH.set()
    async with agent_worker(client, **options):
        assert await handle.result() == 'finished'
    assert TOOL_RUNS == ['once']
    assert len(await _child_starts(client, workflow_id)) == 1
    # The whole history replays on a fresh replayer, without running the child again.
    history = await handle.fetch_history()
    replayer = Replayer(
        workflows=[RestartWorkflow], plugins=[PydanticAIPlugin()], workflow_runner=UnsandboxedWorkflowRunner()
    )
    await replayer.replay_workflow(history)
    assert TOOL_RUNS == ['once']


# --- refusals ----------------------------------------------------------------------------------------------------


async def bad_key_tool() -> str:
    return 'never'  # pragma: no cover - refused


def test_invalid_child_workflow_config_is_refused() -> None:
    bad = {'temporal': {'child_workflow': {'execution_timeout': timedelta(seconds=5), 'no_such_key': 1}}}
    agent = TemporalAgent(
        Agent(
            FunctionModel(call_both),
            name='kids_bad',
            toolsets=[FunctionToolset([Tool(bad_key_tool, metadata=bad)], id='b')],
        )
    )
    with pytest.raises(
        UserError, match=r"(?s)Invalid Temporal `ChildWorkflowConfig` in tool 'bad_key_tool'.*no_such_key"
    ):
        _ = agent.temporal_workflows


def test_other_keys_beside_child_workflow_are_refused() -> None:
    bad: dict[str, Any] = {'temporal': {'child_workflow': {}, 'start_to_close_timeout': timedelta(seconds=5)}}
    agent = Agent(
        FunctionModel(call_both),
        name='kids_bad_keys',
        toolsets=[FunctionToolset([Tool(bad_key_tool, metadata=bad)], id='b')],
        capabilities=[TemporalDurability()],
    )
    with pytest.raises(UserError, match=r'no other key may be given'):
        _ = TemporalDurability.from_agent(agent).temporal_workflows


def sync_tool() -> str:
    return 'never'  # pragma: no cover - refused


def test_sync_tool_is_refused() -> None:
    agent = TemporalAgent(
        Agent(
            FunctionModel(call_both),
            name='kids_sync',
            toolsets=[FunctionToolset([Tool(sync_tool, metadata=CHILD)], id='s')],
        )
    )
    with pytest.raises(UserError, match=r"'sync_tool' selects a Temporal child workflow, but it is a sync function"):
        _ = agent.temporal_workflows


UNREGISTERED = TemporalAgent(Agent(FunctionModel(call_both), name='kids_unregistered', toolsets=[_toolset('kids')]))


@workflow.defn
class UnregisteredWorkflow:
    @workflow.run
    async def run(self) -> str:
        return (await UNREGISTERED.run('go')).output


async def test_child_workflow_not_registered_is_refused(client: Client, task_queue: str) -> None:
    """Activities registered by hand (no plugin): the child's type is missing, and the run fails saying so."""
    async with agent_worker(
        client, workflows=[UnregisteredWorkflow], activities=UNREGISTERED.temporal_activities, task_queue=task_queue
    ):
        with pytest.raises(WorkflowFailureError) as failure:
            await client.execute_workflow(
                UnregisteredWorkflow.run,
                id=str(uuid.uuid4()),
                task_queue=task_queue,
                execution_timeout=WORKFLOW_TIMEOUT,
            )
    assert 'no worker of this process registered' in str(failure.value.cause)


# --- a run of pydantic-ai 2.78's `TemporalDurability` with a child-workflow tool replays on ours ----------------------

REFERENCE_HISTORY = Path(__file__).parent / 'histories' / 'reference_capability' / 'child_workflow.json'
"""A complete run of `ReferenceChildWorkflow` by pydantic-ai 2.78's `TemporalDurability` (written by the 2.x test below
when `RECORD_CAPABILITY_HISTORY=1`): two parallel tool calls, one of them a child workflow, then a second request."""

ours_for_reference = Agent(
    FunctionModel(call_both), name='kids_ref', toolsets=[_toolset('kids')], capabilities=[TemporalDurability()]
)
REFERENCE_AGENTS: dict[str, Any] = {}
"""The reference's agent, built by the 2.x test (our packages cannot import the reference); run unsandboxed."""


@workflow.defn(name='ChildToolReferenceWorkflow')
class OursChildWorkflow:
    @workflow.run
    async def run(self, prompt: str) -> str:
        return (await ours_for_reference.run(prompt)).output


@workflow.defn(name='ChildToolReferenceWorkflow')
class ReferenceChildWorkflow:
    @workflow.run
    async def run(self, prompt: str) -> str:
        return (await REFERENCE_AGENTS['kids_ref'].run(prompt)).output


async def test_a_history_recorded_by_the_reference_replays_on_ours() -> None:
    """On both lines: on 1.107 too, the run draws the UUID 2.x draws for its default `run_id`, so the child's default
    id (the next UUID) is the one 2.78 recorded."""
    text = REFERENCE_HISTORY.read_text()
    # The child's default id starts with the parent's, so the replay is given the parent's id (the first one listed).
    parent_id = re.findall(r'"workflowId": "(reference-child-[^"]+)"', text)[0]
    history = WorkflowHistory.from_json(parent_id, text)
    replayer = Replayer(
        workflows=[OursChildWorkflow], plugins=[PydanticAIPlugin()], workflow_runner=UnsandboxedWorkflowRunner()
    )
    await replayer.replay_workflow(history)
    assert 'agent__kids_ref__toolset__kids__call_tool__child_workflow' in REFERENCE_HISTORY.read_text()


@pytest.mark.skipif(
    not PYDANTIC_AI_2_68, reason='pydantic-ai 2.68 added child-workflow tools to its TemporalDurability'
)
async def test_a_run_of_the_reference_with_a_child_workflow_replays_on_ours(client: Client, task_queue: str) -> None:
    reference = importlib.import_module('pydantic_ai.durable_exec.temporal')
    reference_agent = Agent(
        FunctionModel(call_both),
        name='kids_ref',
        toolsets=[_toolset('kids')],
        capabilities=[reference.TemporalDurability()],
    )
    REFERENCE_AGENTS['kids_ref'] = reference_agent
    workflow_id = f'reference-child-{uuid.uuid4()}'
    async with agent_worker(
        client,
        workflows=[ReferenceChildWorkflow],
        plugins=[reference.AgentPlugin(reference_agent)],
        task_queue=task_queue,
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        output = await client.execute_workflow(
            ReferenceChildWorkflow.run, 'go', id=workflow_id, task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
        )
    [(child_type, child_id)] = await _child_starts(client, workflow_id)
    assert child_type == 'agent__kids_ref__toolset__kids__call_tool__child_workflow'
    assert output == f'a: ran in {child_type} {child_id}, child of {workflow_id} | plain b'
    recorded = await client.get_workflow_handle(workflow_id).fetch_history()
    if os.environ.get('RECORD_CAPABILITY_HISTORY'):
        REFERENCE_HISTORY.write_text(json.dumps(json.loads(recorded.to_json()), indent=1) + '\n')
    replayer = Replayer(
        workflows=[OursChildWorkflow], plugins=[PydanticAIPlugin()], workflow_runner=UnsandboxedWorkflowRunner()
    )
    await replayer.replay_workflow(recorded)


async def _a_leaf_sees_metadata_set_around_it() -> bool:
    """Whether a toolset wrapping a `CombinedToolset` (as a capability's `SetToolMetadata` wraps the agent's) hands the
    leaf toolset the tool definition it changed: pydantic-ai 2.33's `CombinedToolset.call_tool` hands it the tool as the
    leaf listed it, so no toolset, durable or not, sees the metadata a capability added when the tool is called."""
    from dataclasses import replace

    from pydantic_ai import RunContext
    from pydantic_ai.models.test import TestModel
    from pydantic_ai.tools import ToolDefinition
    from pydantic_ai.toolsets import CombinedToolset, PreparedToolset, ToolsetTool
    from pydantic_ai.usage import RunUsage

    seen: list[Any] = []

    class _Leaf(FunctionToolset[None]):
        async def call_tool(
            self, name: str, tool_args: dict[str, Any], ctx: RunContext[None], tool: ToolsetTool[None]
        ) -> Any:
            seen.append(tool.tool_def.metadata)

    def probe() -> None:
        """Nothing."""

    def mark(ctx: RunContext[None], tool_defs: list[ToolDefinition]) -> list[ToolDefinition]:
        return [replace(tool_def, metadata={'marked': True}) for tool_def in tool_defs]

    toolset = PreparedToolset(CombinedToolset([_Leaf([probe])]), mark)
    ctx = RunContext[None](deps=None, model=TestModel(), usage=RunUsage())
    tools = await toolset.get_tools(ctx)
    await toolset.call_tool('probe', {}, ctx, tools['probe'])
    return seen == [{'marked': True}]


SET_METADATA_AGENTS: dict[str, Any] = {}
"""Built by the 2.x test below (`SetToolMetadata` is a pydantic-ai 2.x capability); run unsandboxed."""


@workflow.defn
class SetMetadataWorkflow:
    @workflow.run
    async def run(self) -> str:
        return (await SET_METADATA_AGENTS['agent'].run('go')).output


@pytest.mark.skipif(not PYDANTIC_AI_2, reason='SetToolMetadata is a pydantic-ai 2.x capability')
async def test_set_tool_metadata_selecting_a_child_workflow_is_refused(client: Client, task_queue: str) -> None:
    """A capability's metadata is not read when the worker is configured: the run fails saying so."""
    from pydantic_ai.capabilities import SetToolMetadata

    if not await _a_leaf_sees_metadata_set_around_it():
        pytest.skip(
            "the installed pydantic-ai's CombinedToolset hands a leaf toolset the tool as listed, without the metadata "
            'SetToolMetadata adds (2.33): the tool runs as the plain agent runs it, in its activity'
        )

    agent = Agent(
        FunctionModel(call_both),
        name='kids_set_metadata',
        toolsets=[FunctionToolset([Tool(where), Tool(plain)], id='kids')],
        capabilities=[TemporalDurability(), SetToolMetadata(tools=['where'], temporal=CHILD['temporal'])],
    )
    SET_METADATA_AGENTS['agent'] = agent
    async with agent_worker(
        client,
        workflows=[SetMetadataWorkflow],
        plugins=[AgentPlugin(agent)],
        task_queue=task_queue,
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        with pytest.raises(WorkflowFailureError) as failure:
            await client.execute_workflow(
                SetMetadataWorkflow.run, id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
            )
    assert 'no worker of this process registered' in str(failure.value.cause)
