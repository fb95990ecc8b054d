"""The public extension point: a custom `temporalize_toolset_func` returning a `TemporalWrapperToolset` subclass."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Literal

import pytest
from core_helpers import WORKFLOW_TIMEOUT, activity_names
from pydantic_ai import Agent, RunContext
from pydantic_ai.models.test import TestModel
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.toolsets import AbstractToolset, ToolsetTool
from pydantic_ai.toolsets.external import TOOL_SCHEMA_VALIDATOR
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.workflow import ActivityConfig

from durable_temporal import TemporalAgent, TemporalRunContext, TemporalWrapperToolset, temporalize_toolset
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio

REMOTE_CALLS: list[dict[str, Any]] = []


class RemoteToolset(AbstractToolset[None]):
    """A leaf toolset that is not one of pydantic-ai's: the default temporalize function leaves it alone."""

    @property
    def id(self) -> str:
        return 'remote'

    async def get_tools(self, ctx: RunContext[None]) -> dict[str, ToolsetTool[None]]:
        tool_def = ToolDefinition(
            name='remote_echo',
            parameters_json_schema={
                'type': 'object',
                'properties': {'text': {'type': 'string'}},
                'required': ['text'],
            },
        )
        return {
            'remote_echo': ToolsetTool(
                toolset=self, tool_def=tool_def, max_retries=1, args_validator=TOOL_SCHEMA_VALIDATOR
            )
        }

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[None], tool: ToolsetTool[None]
    ) -> Any:
        REMOTE_CALLS.append(tool_args)
        return f'remote says {tool_args.get("text")}'


class RemoteTemporalToolset(TemporalWrapperToolset[None]):
    def __init__(self, wrapped: AbstractToolset[None], prefix: str, config: ActivityConfig) -> None:
        super().__init__(wrapped)
        self.config = config

        @activity.defn(name=f'{prefix}__remote__{wrapped.id}__call')
        async def call(name: str, tool_args: dict[str, Any]) -> Any:
            tool = (await wrapped.get_tools(None))[name]  # pyright: ignore[reportArgumentType]
            return await wrapped.call_tool(name, tool_args, None, tool)  # pyright: ignore[reportArgumentType]

        self.call_activity = call

    @property
    def temporal_activities(self) -> list[Callable[..., Any]]:
        return [self.call_activity]

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[None], tool: ToolsetTool[None]
    ) -> Any:
        return await workflow.execute_activity(self.call_activity, args=[name, tool_args], **self.config)


def temporalize_remote(
    toolset: AbstractToolset[None],
    activity_name_prefix: str,
    activity_config: ActivityConfig,
    tool_activity_config: dict[str, ActivityConfig | Literal[False]],
    deps_type: type[None],
    run_context_type: type[TemporalRunContext[None]],
    agent: Any,
) -> AbstractToolset[None]:
    if isinstance(toolset, RemoteToolset):
        return RemoteTemporalToolset(toolset, activity_name_prefix, activity_config)
    return temporalize_toolset(
        toolset, activity_name_prefix, activity_config, tool_activity_config, deps_type, run_context_type, agent
    )


remote_agent = TemporalAgent(
    Agent(TestModel(), name='remote', toolsets=[RemoteToolset()]), temporalize_toolset_func=temporalize_remote
)


@workflow.defn
class RemoteWorkflow:
    @workflow.run
    async def run(self) -> str:
        return (await remote_agent.run('call the remote tool')).output


async def test_custom_wrapper_activities_are_registered_and_used(client: Client, task_queue: str) -> None:
    REMOTE_CALLS.clear()
    async with agent_worker(client, workflows=[RemoteWorkflow], agents=[remote_agent], task_queue=task_queue):
        handle = await client.start_workflow(
            RemoteWorkflow.run, id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
        )
        assert 'remote says a' in await handle.result()
    assert REMOTE_CALLS == [{'text': 'a'}]
    assert await activity_names(client, handle) == [
        'agent__remote__model_request',
        'agent__remote__remote__remote__call',
        'agent__remote__model_request',
    ]
