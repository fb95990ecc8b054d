"""Tools and capabilities revealed during a run are available inside the activities that follow, in both forms.

`available_tool_names` and the active-capability ids are computed from live state (the tool manager, the capability
registry) that stays in workflow code: the run context sends their values at dispatch (kernel
`AVAILABILITY_SNAPSHOTS`), as pydantic-ai 2.x's own Temporal integration does. Before, a tool in an activity read
`available_tool_names` as `discovered_tool_names` (no always-visible tool, no tool of a loaded capability) and the
capability ids raised a `UserError`.
"""

from __future__ import annotations

import uuid
from typing import Any
from unittest.mock import patch

import pytest
from core_helpers import WORKFLOW_TIMEOUT
from pydantic_ai import Agent, RunContext
from pydantic_ai.capabilities import Capability
from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models import Model, infer_model
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.toolsets import FunctionToolset
from temporalio import workflow
from temporalio.client import Client

from durable_kernel import PYDANTIC_AI_2
from durable_temporal import AgentPlugin, TemporalAgent, TemporalDurability
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio

ACTIVE_IDS = 'active_capability_ids' if hasattr(RunContext, 'active_capability_ids') else 'available_capability_ids'
"""2.68 renamed `available_capability_ids` (kept as a deprecated alias that warns)."""


def _script(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    # The next step is the first whose tool has not returned yet (1.107 adds a `search_tools` exchange of its own
    # after a load, so the responses cannot be counted).
    returned = {part.tool_name for message in messages for part in message.parts if isinstance(part, ToolReturnPart)}
    # pydantic-ai 1.107 lists a still-hidden tool too, marked `defer_loading` (for its tool search); 2.x lists only
    # the tools revealed (and keeps the mark on them).
    offered = {tool.name for tool in info.function_tools if PYDANTIC_AI_2 or not tool.defer_loading}
    steps: list[tuple[str, dict[str, Any]]] = [('load_capability', {'id': 'billing'}), ('refund', {})]
    if PYDANTIC_AI_2:
        # `ToolReturn(tools=...)` (a reveal made by a tool, here in its activity) is pydantic-ai 2.x's.
        steps += [('opener', {}), ('hidden', {})]
    if not returned:
        assert 'refund' not in offered, 'the capability is not loaded yet'
    for name, args in steps:
        if name not in returned:
            assert name in offered, f'{name} is not offered: {sorted(offered)}'
            return ModelResponse(parts=[ToolCallPart(name, args, tool_call_id=name)])
    return ModelResponse(parts=[TextPart('done')])


def _report(ctx: RunContext[None]) -> dict[str, Any]:
    report: dict[str, Any] = {
        'tools': sorted(ctx.available_tool_names),
        'capabilities': sorted(getattr(ctx, ACTIVE_IDS)),
    }
    if PYDANTIC_AI_2:
        live: Any = ctx  # `is_tool_available` is pydantic-ai 2.x's
        is_available = live.is_tool_available
        report['refund'] = is_available('refund')
        report['opener'] = is_available('opener')
    return report


def _agent(name: str, *, capability_form: bool) -> Agent[None, str]:
    async def refund(ctx: RunContext[None]) -> dict[str, Any]:
        return _report(ctx)

    # The capability's tools in a toolset with an id: on 1.107 a capability's own toolset has none, which Temporal
    # needs to name the activities.
    billing = Capability[None](
        id='billing', defer_loading=True, toolsets=[FunctionToolset([refund], id=f'{name}_billing')]
    )
    capabilities: list[Any] = [billing]
    if capability_form:
        capabilities.append(TemporalDurability())
    agent = Agent(FunctionModel(_script), name=name, capabilities=capabilities)

    @agent.tool
    async def opener(ctx: RunContext[None]) -> Any:
        from pydantic_ai import ToolReturn

        tool_return: Any = ToolReturn
        return tool_return(return_value='opened', tools=['hidden'])

    @agent.tool_plain(defer_loading=True)
    async def hidden() -> str:
        return 'secret'

    return agent


capability_agent = _agent('avail_cap', capability_form=True)
wrapped_agent = TemporalAgent(_agent('avail_wrap', capability_form=False))


@workflow.defn
class AvailabilityWorkflow:
    @workflow.run
    async def run(self, form: str) -> list[Any]:
        agent: Any = capability_agent if form == 'capability' else wrapped_agent
        result = await agent.run('refund, then open')
        return [
            [
                part.part_kind,
                getattr(part, 'tool_name', None),
                getattr(part, 'content', getattr(part, 'tools_added', 0)),
            ]
            for message in result.all_messages()
            for part in message.parts
            if part.part_kind in ('tool-return', 'tool-availability-delta')
        ]


@pytest.mark.parametrize('form', ['capability', 'wrapper'])
async def test_a_revealed_tool_and_a_loaded_capability_are_available_in_the_activities_after(
    client: Client, task_queue: str, form: str
) -> None:
    plugins = [AgentPlugin(capability_agent)] if form == 'capability' else [AgentPlugin(wrapped_agent)]
    async with agent_worker(client, workflows=[AvailabilityWorkflow], plugins=plugins, task_queue=task_queue):
        parts = await client.execute_workflow(
            AvailabilityWorkflow.run,
            form,
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
    returns = {name: content for kind, name, content in parts if kind == 'tool-return'}
    report = returns['refund']
    # Inside the refund tool's activity: the loaded capability and its tool, and the always-visible tools.
    assert {'load_capability', 'opener', 'refund'} <= set(report['tools'])
    assert 'hidden' not in report['tools']
    assert 'billing' in report['capabilities']
    if not PYDANTIC_AI_2:
        return
    assert (report['refund'], report['opener']) == (True, True)
    # A reveal made by a tool in its activity, and one made by loading the capability, are both in the history.
    deltas = [content for kind, _, content in parts if kind == 'tool-availability-delta']
    assert deltas == [['refund'], ['hidden']]
    assert returns['hidden'] == 'secret'


# --- a model selected by a string gets the history prepared for it, in its activity ---------------------------------

ANNOUNCED = '<system>The following tool(s) are now available: `cross_refund`</system>'


def _kind(part: Any) -> str:
    return part.part_kind  # 2.x kinds too (1.107's literal type lacks them)


def _secondary(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    # A model without a native way to be told of new tools: it is told in words, and never sees the delta part.
    parts = [part for message in messages for part in message.parts]
    assert not any(_kind(part) == 'tool-availability-delta' for part in parts)
    assert any(getattr(part, 'content', None) == ANNOUNCED for part in parts), parts
    if not any(isinstance(part, ToolReturnPart) and part.tool_name == 'cross_refund' for part in parts):
        return ModelResponse(parts=[ToolCallPart('cross_refund', {}, tool_call_id='refund')])
    return ModelResponse(parts=[TextPart('refund complete')])


def _primary(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    # A model that takes the delta itself: it must get the part, or it would load the capability again.
    deltas = [part for message in messages for part in message.parts if _kind(part) == 'tool-availability-delta']
    if not deltas:
        return ModelResponse(parts=[ToolCallPart('load_capability', {'id': 'cross-billing'}, tool_call_id='load')])
    return ModelResponse(parts=[TextPart('capability loaded')])


def _string_models() -> dict[str, Model]:
    from pydantic_ai.profiles import ModelProfile

    profile: Any = ModelProfile
    return {
        'openai:cross-secondary': FunctionModel(_secondary, model_name='cross-secondary', profile=profile()),
        'anthropic:cross-primary': FunctionModel(
            _primary,
            model_name='cross-primary',
            profile=profile(tool_addition_mode='by_reference', tool_deferral_mode='standalone'),
        ),
    }


async def cross_refund(ctx: RunContext[None]) -> str:
    live: Any = ctx
    return f'refund available in its activity: {live.is_tool_available("cross_refund")}'


def _cross_agent() -> TemporalAgent[None, str]:
    cross_billing = Capability[None](
        id='cross-billing', defer_loading=True, toolsets=[FunctionToolset([cross_refund], id='cross_billing')]
    )
    base = Agent(
        FunctionModel(_secondary, model_name='cross-secondary'),
        name='avail_cross',
        deps_type=type(None),
        capabilities=[cross_billing],
    )
    return TemporalAgent(base)


cross_agent = _cross_agent()


@workflow.defn
class CrossModelWorkflow:
    @workflow.run
    async def run(self, prompt: str, model: str, history: list[ModelMessage] | None) -> list[Any]:
        result = await cross_agent.run(prompt, model=model, message_history=history)
        return [result.output, result.all_messages()]


@pytest.mark.skipif(
    not PYDANTIC_AI_2, reason='tool availability deltas (`ToolAvailabilityDeltaPart`) are pydantic-ai 2.x'
)
async def test_a_string_model_gets_the_history_prepared_for_it_in_its_activity(client: Client, task_queue: str) -> None:
    models = _string_models()
    real_infer = infer_model

    def infer(model: Any, *args: Any, **kwargs: Any) -> Model:
        # The activity builds the string's model: these two stand for real providers.
        return models.get(str(model)) or real_infer(model, *args, **kwargs)

    with patch('pydantic_ai.models.infer_model', side_effect=infer):
        async with agent_worker(client, workflows=[CrossModelWorkflow], agents=[cross_agent], task_queue=task_queue):
            first = await client.execute_workflow(
                CrossModelWorkflow.run,
                args=['load the refund capability', 'anthropic:cross-primary', None],
                id=str(uuid.uuid4()),
                task_queue=task_queue,
                execution_timeout=WORKFLOW_TIMEOUT,
            )
            history = ModelMessagesTypeAdapter.validate_python(first[1])
            second = await client.execute_workflow(
                CrossModelWorkflow.run,
                args=['issue the refund', 'openai:cross-secondary', history],
                id=str(uuid.uuid4()),
                task_queue=task_queue,
                execution_timeout=WORKFLOW_TIMEOUT,
            )
    assert first[0] == 'capability loaded'
    assert second[0] == 'refund complete'
    returns = [
        part['content']
        for message in second[1]
        for part in message['parts']
        if part.get('part_kind') == 'tool-return' and part.get('tool_name') == 'cross_refund'
    ]
    assert returns == ['refund available in its activity: True']
