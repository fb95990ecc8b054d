from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, cast

import pytest
from dbos import DBOS
from pydantic_ai import Agent, RunContext
from pydantic_ai.exceptions import UserError
from pydantic_ai.models.test import TestModel
from pydantic_ai.toolsets import AbstractToolset, FunctionToolset, ToolsetTool

from durable_dbos import DBOSAgent, DBOSMCPServer
from durable_kernel import PYDANTIC_AI_2

pytestmark = pytest.mark.anyio


def test_agent_without_name_is_refused() -> None:
    with pytest.raises(UserError, match=r'needs a unique, stable `name`'):
        DBOSAgent(Agent(TestModel()))


def test_agent_without_model_is_refused(agent_name: str) -> None:
    with pytest.raises(UserError, match=r'needs a `model` set at construction'):
        DBOSAgent(Agent(name=agent_name))


def test_same_name_twice_is_refused(agent_name: str) -> None:
    DBOSAgent(Agent(TestModel(), name=agent_name))
    with pytest.raises(UserError, match=r'already exists in this process'):
        DBOSAgent(Agent(TestModel(), name=agent_name))


def test_unsupported_parallel_mode_is_refused(agent_name: str) -> None:
    with pytest.raises(UserError, match=r"'parallel_ordered_events' or 'sequential'"):
        DBOSAgent(Agent(TestModel(), name=agent_name), parallel_execution_mode='parallel')  # pyright: ignore[reportArgumentType]


def test_dbos_mcp_server_refuses_a_toolset_that_is_not_mcp(agent_name: str) -> None:
    def ping() -> str:
        return 'pong'  # pragma: no cover - never called

    with pytest.raises(
        UserError, match=r"`DBOSMCPServer` wraps MCP toolsets \(.*`MCPToolset`.*\), not FunctionToolset 'x'"
    ):
        DBOSMCPServer(FunctionToolset([ping], id='x'), step_name_prefix=agent_name)


class ThirdPartyMCPToolset(AbstractToolset[Any]):
    """An MCP client toolset of a class that pydantic-ai does not have (here, as if from the `fastmcp` package)."""

    __module__ = 'fastmcp.contrib.toolset'

    @property
    def id(self) -> str | None:
        return 'remote'

    async def get_tools(self, ctx: RunContext[Any]) -> dict[str, ToolsetTool[Any]]:
        raise AssertionError('never listed')  # pragma: no cover

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        raise AssertionError('never called')  # pragma: no cover


def test_an_mcp_toolset_of_an_unknown_class_is_refused_at_construction(agent_name: str) -> None:
    """Its listing would reach the server from workflow code: refused, not wrapped as if it were function tools."""
    with pytest.raises(
        UserError,
        match=r"ThirdPartyMCPToolset 'remote' is a `ThirdPartyMCPToolset` \(an MCP client, "
        r'`fastmcp.contrib.toolset.ThirdPartyMCPToolset`\), which `DBOSAgent` cannot make durable.*'
        r'`pydantic_ai.mcp.MCPToolset`',
    ):
        DBOSAgent(Agent(TestModel(), name=agent_name, toolsets=[ThirdPartyMCPToolset().prefixed('remote')]))


async def test_run_stream_events_is_refused_with_the_alternative(agent_name: str) -> None:
    dbos_agent = DBOSAgent(Agent(TestModel(), name=agent_name))
    with pytest.raises(UserError, match=r'run_stream_events\(\)` cannot be used with DBOS.*event_stream_handler'):
        dbos_agent.run_stream_events('hi')


async def test_run_stream_inside_a_workflow_is_refused(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    dbos_agent = DBOSAgent(Agent(TestModel(), name=agent_name))

    @DBOS.workflow(name=f'{agent_name}.streaming_workflow')
    async def streaming_workflow() -> str:
        async with dbos_agent.run_stream('hi') as stream:
            return await stream.get_output()

    dbos_launch()
    with pytest.raises(UserError, match=r'cannot be used inside a DBOS workflow.*event_stream_handler'):
        await streaming_workflow()


async def test_realtime_sessions_are_refused_inside_a_workflow(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    """2.x's realtime sessions are live connections a workflow cannot record; 1.107 has none."""
    agent = DBOSAgent(Agent(TestModel(), name=agent_name))
    if not hasattr(agent, 'realtime'):  # 1.107 has no realtime sessions: nothing to refuse
        assert not PYDANTIC_AI_2
        return

    @DBOS.workflow(name=f'{agent_name}.realtime_workflow')
    async def opens_a_session() -> str:
        try:
            async with cast(Any, agent).realtime(cast(Any, object())).session():
                pass  # pragma: no cover
        except UserError as error:
            return str(error)
        return 'not refused'  # pragma: no cover

    dbos_launch()
    assert '`agent.realtime(...).session()` cannot be used inside a DBOS workflow' in await opens_a_session()


# pydantic-ai 2.78's external events (`wait_for_external_event`) wait durably in both forms: `test_external_events.py`.


async def test_non_dbos_model_at_run_time_is_refused(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    dbos_agent = DBOSAgent(Agent(TestModel(), name=agent_name))
    dbos_launch()
    with pytest.raises(UserError, match=r'only uses `DBOSModel`s: a plain model passed at run time'):
        await dbos_agent.run('hi', model=TestModel())
    with pytest.raises(UserError, match=r'only uses `DBOSModel`s'):
        await dbos_agent.run('hi', model='openai:gpt-4o')


def test_non_dbos_model_in_override_is_refused(agent_name: str) -> None:
    dbos_agent = DBOSAgent(Agent(TestModel(), name=agent_name))
    with pytest.raises(UserError, match=r'a plain model in `override`'), dbos_agent.override(model=TestModel()):
        pass


async def test_unpicklable_deps_are_refused_at_run(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    dbos_agent = DBOSAgent(Agent(TestModel(), name=agent_name, deps_type=object))
    dbos_launch()
    with pytest.raises(UserError, match=r'The `deps` object \(lock\) cannot be checkpointed by DBOS'):
        await dbos_agent.run('hi', deps=threading.Lock())


async def test_unpicklable_run_input_is_named(agent_name: str, dbos_launch: Callable[[], None]) -> None:
    dbos_agent = DBOSAgent(Agent(TestModel(), name=agent_name))
    dbos_launch()
    with pytest.raises(UserError, match=r'The `metadata` argument \(dict\) cannot be checkpointed'):
        await dbos_agent.run('hi', metadata={'lock': threading.Lock()})
