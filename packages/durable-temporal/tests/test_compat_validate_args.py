"""A run of pydantic-ai 2.x's `TemporalDurability` with `validate_args` activities goes on with ours (2.68, 2.78)."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from core_helpers import activity_names
from pydantic_ai import Agent, RunContext, Tool
from pydantic_ai.exceptions import ModelRetry
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.toolsets import FunctionToolset
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker

from durable_kernel import ARGS_VALIDATOR_UNITS, DynamicToolset
from durable_temporal import PydanticAIPlugin, TemporalDurability

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not ARGS_VALIDATOR_UNITS, reason='the installed pydantic-ai has no `validate_args` units'),
]

_TIMEOUT = timedelta(seconds=120)


def positive(ctx: RunContext[Any], n: int) -> None:
    """Refuse a negative `n` (the model is asked to retry)."""
    if n < 0:
        raise ModelRetry('n must be positive')


def double(n: int) -> int:
    """Twice `n`."""
    return 2 * n


def triple(n: int) -> int:
    """Three times `n`."""
    return 3 * n


def script(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Both tools with -1 (refused by their validators), then both with 2, then the answer."""
    responses = sum(isinstance(message, ModelResponse) for message in messages)
    if responses < 2:
        n = -1 if responses == 0 else 2
        return ModelResponse(
            parts=[
                ToolCallPart('double', {'n': n}, tool_call_id=f'd{responses}'),
                ToolCallPart('triple', {'n': n}, tool_call_id=f't{responses}'),
            ]
        )
    return ModelResponse(parts=[TextPart('done')])


def checked_tools(ctx: RunContext[None]) -> FunctionToolset[None]:
    toolset = FunctionToolset[None]()
    toolset.add_function(triple, args_validator=positive)
    return toolset


def _agent(capability: Any) -> Agent[None, str]:
    return Agent(
        FunctionModel(script),
        name='cap_vargs',
        tools=[Tool(double, args_validator=positive)],
        toolsets=[DynamicToolset(checked_tools, id='checked')],
        capabilities=[capability],
    )


ours_agent = _agent(TemporalDurability())


def _name(fn: Callable[..., Any]) -> str:
    return activity._Definition.must_from_callable(fn).name or ''  # pyright: ignore[reportPrivateUsage, reportUnknownMemberType]


REFERENCE_AGENTS: dict[str, Agent[None, str]] = {}
"""The reference's agent, built by the test (our packages cannot import the reference); run unsandboxed."""


@workflow.defn(name='ValidateArgsSwitchWorkflow')
class OursWorkflow:
    @workflow.run
    async def run(self, prompt: str) -> str:
        return (await ours_agent.run(prompt)).output


@workflow.defn(name='ValidateArgsSwitchWorkflow')
class ReferenceWorkflow:
    @workflow.run
    async def run(self, prompt: str) -> str:
        return (await REFERENCE_AGENTS['cap_vargs'].run(prompt)).output


async def test_a_run_with_validate_args_started_by_the_reference_finishes_on_ours(client: Client, task_queue: str):
    reference_class: Any = importlib.import_module('pydantic_ai.durable_exec.temporal').TemporalDurability
    reference_agent = _agent(reference_class())
    REFERENCE_AGENTS['cap_vargs'] = reference_agent
    reference_activities = list(reference_class.from_agent(reference_agent).temporal_activities)

    # A whole run by the reference: its history (validate_args activities and their results) replays on ours.
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[ReferenceWorkflow],
        activities=reference_activities,
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        whole = await client.start_workflow(
            ReferenceWorkflow.run, 'go', id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=_TIMEOUT
        )
        assert await whole.result() == 'done'
    reference_names = await activity_names(client, whole)
    assert 'agent__cap_vargs__toolset__<agent>__validate_args' in reference_names
    assert 'agent__cap_vargs__dynamic_toolset__checked__validate_args' in reference_names
    recorded = await whole.fetch_history()
    await Replayer(workflows=[OursWorkflow], plugins=[PydanticAIPlugin()], debug_mode=True).replay_workflow(recorded)

    # The reference's workflow code with our validate_args activities (a worker of ours runs the ones a workflow of
    # the reference scheduled), and ours with the reference's (rolling back): the same run, the same activities.
    # Only those are swapped: the other units of 2.x's reference return results of other shapes than ours (for its own
    # 2.x workflow code), so the rest of each run uses its own workflow code's activities.
    ours = list(TemporalDurability.from_agent(ours_agent).temporal_activities)

    def swapped(own: list[Callable[..., Any]], other: list[Callable[..., Any]]) -> list[Callable[..., Any]]:
        validate = {_name(fn) for fn in other if _name(fn).endswith('__validate_args')}
        assert len(validate) == 2
        return [fn for fn in own if _name(fn) not in validate] + [fn for fn in other if _name(fn) in validate]

    for workflow_class, activities in (
        (ReferenceWorkflow, swapped(reference_activities, ours)),
        (OursWorkflow, swapped(ours, reference_activities)),
    ):
        queue = f'{task_queue}-{workflow_class.__name__}'
        async with Worker(
            client,
            task_queue=queue,
            workflows=[workflow_class],
            activities=activities,
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            handle = await client.start_workflow(
                workflow_class.run, 'go', id=str(uuid.uuid4()), task_queue=queue, execution_timeout=_TIMEOUT
            )
            assert await handle.result() == 'done'
        assert await activity_names(client, handle) == reference_names
