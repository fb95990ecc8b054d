"""`DBOSDurability` and dynamic toolsets: built, listed and called in steps; `enqueue()`/`cancel()` refused there.

Step names are pydantic-ai 2.x's for the same agent (persisted data): `X__dynamic_toolset__{id}.get_tools` once per
model request, `X__dynamic_toolset__{id}.call_tool` per call. A dynamic capability's toolset is one of them, with the
capability's id (pydantic-ai 2.x). Also here: `cancellation_token=` refused inside a workflow (2.x).
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable
from typing import Any, cast

import pytest
from dbos import DBOS, SetWorkflowID
from pydantic_ai import Agent, RunContext
from pydantic_ai.exceptions import ModelRetry, UserError
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.toolsets import AbstractToolset, FunctionToolset

from durable_dbos import DBOSDurability
from durable_dbos.testing import workflow_step_names_async
from durable_kernel import ARGS_VALIDATOR_UNITS, PYDANTIC_AI_2, DynamicToolset

from .helpers import call, respond, scripted_model
from .test_mcp import RecordingModel, make_server

pytestmark = pytest.mark.anyio

only_2x = pytest.mark.skipif(not PYDANTIC_AI_2, reason='a pydantic-ai 2.x feature')


def user_workflow(name: str, agent: Agent[Any, str]) -> Callable[..., Any]:
    """The user's workflow: `agent.run` inside `@DBOS.workflow()` (registered before launch)."""

    @DBOS.workflow(name=f'{name}.user_workflow')
    async def workflow(prompt: str) -> str:
        return (await agent.run(prompt)).output

    return workflow


async def run_in_workflow(workflow: Callable[..., Any], prompt: str) -> tuple[str, list[str]]:
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        output = await workflow(prompt)
    return output, await workflow_step_names_async(workflow_id)


async def test_a_dynamic_toolset_is_built_listed_and_called_in_steps(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    built: list[str] = []
    calls: list[str] = []

    def shout(text: str) -> str:
        calls.append(text)
        return text.upper()

    def factory(ctx: RunContext[None]) -> AbstractToolset[None]:
        # Records where the function runs: only inside the dynamic toolset's steps.
        built.append(str(DBOS.step_id is not None))
        return FunctionToolset([shout], instructions='Shout when asked.')

    seen_instructions: list[str | None] = []

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen_instructions.append(info.instructions)
        if any(isinstance(message, ModelResponse) for message in messages):
            return respond('done')
        return respond(call('shout', {'text': 'a'}))

    agent = Agent(
        FunctionModel(answer),
        name=agent_name,
        toolsets=[DynamicToolset(factory, id='loud')],
        capabilities=[DBOSDurability()],
    )
    workflow = user_workflow(agent_name, agent)
    dbos_launch()
    output, steps = await run_in_workflow(workflow, 'go')

    assert output == 'done'
    assert calls == ['a']
    prefix = f'{agent_name}__dynamic_toolset__loud'
    assert steps == [
        f'{prefix}.get_tools',
        f'{agent_name}__model.request',
        f'{prefix}.call_tool',
        f'{prefix}.get_tools',
        f'{agent_name}__model.request',
    ]
    # Built in each step (two listings, one call), never in workflow code.
    assert built == ['True', 'True', 'True']
    # The toolset's instructions, listed in its step, reached the model.
    assert seen_instructions == ['Shout when asked.', 'Shout when asked.']


async def test_a_dynamic_tools_args_validator_runs_in_its_own_step(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    """The validator exists only where the toolset is built: it runs in a step, and its retry is recorded.

    Where the installed pydantic-ai has `validate_args` steps (`ARGS_VALIDATOR_UNITS`: 2.68, 2.78) in that step, before
    the call, as pydantic-ai 2.x's `DBOSDurability` does (a refused call then never runs its call step); elsewhere in
    the call step, before the call, as earlier releases recorded it.
    """
    checked: list[tuple[int, bool]] = []

    def positive(ctx: RunContext[None], n: int) -> None:
        checked.append((n, DBOS.step_id is not None))
        if n < 0:
            raise ModelRetry('n must be positive')

    def double(n: int) -> int:
        return 2 * n

    def factory(ctx: RunContext[None]) -> FunctionToolset[None]:
        toolset = FunctionToolset[None]()
        toolset.add_function(double, args_validator=positive)
        return toolset

    agent = Agent(
        scripted_model(respond(call('double', {'n': -1})), respond(call('double', {'n': 2}, 'c2')), respond('done')),
        name=agent_name,
        toolsets=[DynamicToolset(factory, id='checked')],
        capabilities=[DBOSDurability()],
    )
    workflow = user_workflow(agent_name, agent)
    dbos_launch()
    output, steps = await run_in_workflow(workflow, 'go')

    assert output == 'done'
    assert checked == [(-1, True), (2, True)]
    prefix = f'{agent_name}__dynamic_toolset__checked'
    if ARGS_VALIDATOR_UNITS:
        assert steps == [
            f'{prefix}.get_tools',
            f'{agent_name}__model.request',
            f'{prefix}.validate_args',
            f'{prefix}.get_tools',
            f'{agent_name}__model.request',
            f'{prefix}.validate_args',
            f'{prefix}.call_tool',
            f'{prefix}.get_tools',
            f'{agent_name}__model.request',
        ]
    else:
        assert steps.count(f'{prefix}.call_tool') == 2
        assert f'{prefix}.validate_args' not in steps


async def test_outside_a_workflow_the_dynamic_toolset_is_plain(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    def shout(text: str) -> str:
        return text.upper()

    agent = Agent(
        TestModel(),
        name=agent_name,
        toolsets=[DynamicToolset(lambda ctx: FunctionToolset([shout]), id='loud')],
        capabilities=[DBOSDurability()],
    )
    dbos_launch()
    assert (await agent.run('go')).output == '{"shout":"A"}'


async def test_enqueue_inside_a_dynamic_tool_step_is_refused(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    """A recovered workflow gets the call step's result back without calling the tool: the message would be lost."""

    async def enqueue(ctx: RunContext[None]) -> str:
        ctx.enqueue('later')
        return 'done'

    agent = Agent(
        TestModel(),
        name=agent_name,
        toolsets=[DynamicToolset(lambda ctx: FunctionToolset([enqueue]), id='queueing')],
        capabilities=[DBOSDurability()],
    )
    workflow = user_workflow(agent_name, agent)
    dbos_launch()

    with pytest.raises(UserError, match=r'`ctx.enqueue\(\)` cannot be used inside a durable step'):
        await workflow('go')
    # Outside a workflow the tool is a plain call and enqueueing works.
    await agent.run('go')


async def test_enqueue_inside_the_dynamic_toolset_function_is_refused(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    """The function runs in the listing step: its context refuses `enqueue()` too."""
    refusals: list[str] = []

    def factory(ctx: RunContext[None]) -> FunctionToolset[None]:
        try:
            ctx.enqueue('later')
        except UserError as error:
            refusals.append(str(error))
        return FunctionToolset([])

    agent = Agent(
        TestModel(), name=agent_name, toolsets=[DynamicToolset(factory, id='factory')], capabilities=[DBOSDurability()]
    )
    workflow = user_workflow(agent_name, agent)
    dbos_launch()
    await workflow('go')
    assert len(refusals) == 1
    assert 'the enqueued messages would be dropped' in refusals[0]


@only_2x
async def test_cancel_inside_a_dynamic_tool_step_is_refused(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    run_cancelled: Any = importlib.import_module('pydantic_ai.exceptions').RunCancelled

    async def cancel(ctx: RunContext[None]) -> str:
        cast(Any, ctx).cancel()
        return 'finished before the cancellation took effect'

    agent = Agent(
        TestModel(),
        name=agent_name,
        toolsets=[DynamicToolset(lambda ctx: FunctionToolset([cancel]), id='cancelling')],
        capabilities=[DBOSDurability()],
    )
    workflow = user_workflow(agent_name, agent)
    dbos_launch()

    with pytest.raises(UserError, match='the cancellation would silently not happen again'):
        await workflow('go')
    with pytest.raises(run_cancelled):
        await agent.run('go')


@pytest.mark.timeout(300)
async def test_an_mcp_toolset_built_by_a_dynamic_toolset_runs_inside_its_steps(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    """The wrapper form refuses it (its listing would be workflow code); here it connects inside the steps."""
    recording = RecordingModel()
    agent = Agent(
        recording.model,
        name=agent_name,
        toolsets=[DynamicToolset(lambda ctx: make_server('MCPToolset'), id='calc_dyn')],
        capabilities=[DBOSDurability()],
    )
    workflow = user_workflow(agent_name, agent)
    dbos_launch()
    output, steps = await run_in_workflow(workflow, 'go')

    assert output == 'done'
    prefix = f'{agent_name}__dynamic_toolset__calc_dyn'
    assert steps[:2] == [f'{prefix}.get_tools', f'{agent_name}__model.request']
    assert sorted(steps[2:4]) == [f'{prefix}.call_tool'] * 2
    assert steps[4:] == [f'{prefix}.get_tools', f'{agent_name}__model.request']
    # The server's instructions, listed in the step, reached the model.
    assert recording.instructions[0] is not None
    assert 'Use `add` to add numbers.' in recording.instructions[0]


@only_2x
async def test_a_dynamic_capability_tool_runs_in_steps(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    capabilities: Any = importlib.import_module('pydantic_ai.capabilities')

    calls: list[str] = []

    def dynamic_tool() -> str:
        calls.append('called')
        return 'dynamic result'

    def factory(ctx: RunContext[None]) -> Any:
        return capabilities.Capability(tools=[dynamic_tool])

    agent = Agent(
        TestModel(),
        name=agent_name,
        capabilities=[capabilities.DynamicCapability(factory, id='dyn'), DBOSDurability()],
    )
    workflow = user_workflow(agent_name, agent)
    dbos_launch()
    output, steps = await run_in_workflow(workflow, 'go')

    assert output == '{"dynamic_tool":"dynamic result"}'
    assert calls == ['called']
    assert f'{agent_name}__dynamic_toolset__dyn.get_tools' in steps
    assert f'{agent_name}__dynamic_toolset__dyn.call_tool' in steps


@only_2x
@pytest.mark.timeout(300)
async def test_a_dynamic_capability_mcp_toolset_runs_in_steps(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    capabilities: Any = importlib.import_module('pydantic_ai.capabilities')

    def factory(ctx: RunContext[None]) -> Any:
        return capabilities.Capability(toolsets=[make_server('MCPToolset')])

    agent = Agent(
        RecordingModel().model,
        name=agent_name,
        capabilities=[capabilities.DynamicCapability(factory, id='dyn_mcp'), DBOSDurability()],
    )
    workflow = user_workflow(agent_name, agent)
    dbos_launch()
    output, steps = await run_in_workflow(workflow, 'go')

    assert output == 'done'
    assert f'{agent_name}__dynamic_toolset__dyn_mcp.get_tools' in steps
    assert steps.count(f'{agent_name}__dynamic_toolset__dyn_mcp.call_tool') == 2
    assert not [step for step in steps if '__mcp_server' in step]


@only_2x
async def test_a_cancellation_token_is_refused_inside_a_workflow(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    cancellation_token: Any = importlib.import_module('pydantic_ai').CancellationToken

    agent = Agent(TestModel(), name=agent_name, capabilities=[DBOSDurability()])

    @DBOS.workflow(name=f'{agent_name}.token_workflow')
    async def workflow() -> str:
        return (await cast(Any, agent).run('go', cancellation_token=cancellation_token())).output

    dbos_launch()
    with pytest.raises(
        UserError, match='`cancellation_token` cannot be used with DBOS durable execution inside a workflow'
    ):
        await workflow()
    # Outside a workflow the capability changes nothing: the token is accepted.
    result = await cast(Any, agent).run('go', cancellation_token=cancellation_token())
    assert result.output == 'success (no tool calls)'
