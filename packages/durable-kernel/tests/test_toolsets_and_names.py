from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic_ai import Agent, FunctionToolset
from pydantic_ai.exceptions import UserError
from pydantic_ai.models.test import TestModel
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.toolsets import AbstractToolset, CombinedToolset, WrapperToolset

from durable_kernel import (
    DBOSOperationNamer,
    PrefectOperationNamer,
    TemporalOperationNamer,
    dbos_child_workflow_name,
    dbos_dynamic_toolset_step_name,
    dbos_function_toolset_step_name,
    dbos_mcp_step_name,
    dbos_model_step_name,
    dbos_tool_step_name,
    dbos_workflow_name,
    leaf_toolsets,
    prefect_flow_name,
    prefect_task_name,
    replace_leaf_toolsets,
    require_agent_name,
    require_toolset_id,
    require_unique_toolset_ids,
    temporal_activity_name,
    temporal_activity_prefix,
    temporal_child_workflow_name,
)


def tool_a() -> str:
    return 'a'


def tool_b() -> str:
    return 'b'


def test_leaf_toolsets_walk_through_wrappers_in_order():
    first = FunctionToolset([tool_a], id='first')
    second = FunctionToolset([tool_b], id='second')
    tree = CombinedToolset([first.prefixed('p'), second.filtered(lambda ctx, td: True)])
    assert leaf_toolsets(tree) == [first, second]


def test_replace_leaf_toolsets_returns_a_new_tree():
    first = FunctionToolset([tool_a], id='first')
    tree = CombinedToolset([first.prefixed('p')])

    class Marker(WrapperToolset[Any]):
        pass

    def wrap(leaf: AbstractToolset[Any]) -> AbstractToolset[Any]:
        return Marker(leaf)

    replaced = replace_leaf_toolsets(tree, wrap)
    assert leaf_toolsets(tree) == [first]
    assert [type(t) for t in leaf_toolsets(replaced)] == [FunctionToolset]  # the leaf under the marker
    assert replaced is not tree


def test_agent_toolset_leaves_include_the_agent_tools():
    agent = Agent(TestModel(), name='agent', tools=[tool_a], toolsets=[FunctionToolset([tool_b], id='extra')])
    ids = [t.id for t in leaf_toolsets(CombinedToolset(agent.toolsets))]
    assert ids == ['<agent>', 'extra']


def test_toolset_without_id_is_refused_with_the_fix():
    with pytest.raises(UserError, match=r'has no `id`, which Temporal needs.*id='):
        require_toolset_id(FunctionToolset([tool_a]), engine='Temporal')
    assert require_toolset_id(FunctionToolset([tool_a], id='x'), engine='DBOS') == 'x'


def test_agent_without_name_is_refused_with_the_fix():
    with pytest.raises(UserError, match=r'unique, stable `name`.*DBOS.*name=\.\.\.'):
        require_agent_name(None, engine='DBOS')
    assert require_agent_name('support', engine='DBOS') == 'support'


def test_temporal_activity_names_match_the_reference():
    assert temporal_activity_name('n', 'event_stream_handler') == 'agent__n__event_stream_handler'
    assert temporal_activity_name('n', 'model_request') == 'agent__n__model_request'
    assert temporal_activity_name('n', 'model_request_stream') == 'agent__n__model_request_stream'
    assert temporal_activity_name('n', 'toolset_call_tool', '<agent>') == 'agent__n__toolset__<agent>__call_tool'
    assert temporal_activity_name('n', 'dynamic_toolset_get_tools', 'd') == 'agent__n__dynamic_toolset__d__get_tools'
    assert temporal_activity_name('n', 'dynamic_toolset_call_tool', 'd') == 'agent__n__dynamic_toolset__d__call_tool'
    assert (
        temporal_activity_name('n', 'mcp_server_get_instructions', 'm') == 'agent__n__mcp_server__m__get_instructions'
    )
    assert temporal_activity_name('n', 'mcp_server_get_tools', 'm') == 'agent__n__mcp_server__m__get_tools'
    assert temporal_activity_name('n', 'mcp_server_call_tool', 'm') == 'agent__n__mcp_server__m__call_tool'
    with pytest.raises(ValueError, match='needs a toolset id'):
        temporal_activity_name('n', 'mcp_server_call_tool')
    # Named for `TemporalOperationNamer` (no activity of ours), and a function tool's child workflow.
    assert temporal_activity_name('n', 'function_toolset_get_tools', 'f') == 'agent__n__function_toolset__f__get_tools'
    assert temporal_activity_name('n', 'mcp_server_validate_args', 'm') == 'agent__n__mcp_server__m__validate_args'
    assert (
        temporal_child_workflow_name(temporal_activity_prefix('n'), 'f')
        == 'agent__n__toolset__f__call_tool__child_workflow'
    )


def test_dbos_and_prefect_names_match_the_reference():
    assert dbos_workflow_name('n', 'run') == 'n.run'
    assert dbos_workflow_name('n', 'run_sync') == 'n.run_sync'
    assert dbos_model_step_name('n') == 'n__model.request'
    assert dbos_model_step_name('n', stream=True) == 'n__model.request_stream'
    assert dbos_model_step_name('n', operation='compact_messages') == 'n__model.compact_messages'
    assert dbos_model_step_name('n', operation='cancel_suspended_response') == 'n__model.cancel_suspended_response'
    assert dbos_model_step_name('n', operation='count_tokens') == 'n__model.count_tokens'
    assert dbos_mcp_step_name('n', 'm', 'call_tool') == 'n__mcp_server__m.call_tool'
    assert dbos_mcp_step_name('n', None, 'get_tools') == 'n__mcp_server.get_tools'
    assert dbos_dynamic_toolset_step_name('n', 'd', 'get_tools') == 'n__dynamic_toolset__d.get_tools'
    assert dbos_dynamic_toolset_step_name('n', 'd', 'call_tool') == 'n__dynamic_toolset__d.call_tool'
    assert dbos_tool_step_name('n', '<agent>', 'add') == 'n__toolset__<agent>.call_tool.add'
    assert dbos_tool_step_name('n', None, 'add') == 'n__toolset.call_tool.add'
    assert dbos_tool_step_name('n', '', 'add') == 'n__toolset.call_tool.add'
    assert dbos_mcp_step_name('n', 'm', 'validate_args') == 'n__mcp_server__m.validate_args'
    assert dbos_function_toolset_step_name('n', 'f', 'get_tools') == 'n__function_toolset__f.get_tools'
    assert dbos_child_workflow_name('n', 'f') == 'n__function_toolset__f.call_tool__child_workflow'
    assert prefect_flow_name('n', 'run') == 'n Run'
    assert prefect_flow_name('n', 'run_sync') == 'n Sync Run'
    assert prefect_task_name('model_request', 'test') == 'Model Request: test'
    assert prefect_task_name('model_request_stream', 'test') == 'Model Request (Streaming): test'
    assert prefect_task_name('call_tool', 'add') == 'Call Tool: add'
    assert prefect_task_name('call_mcp_tool', 'add') == 'Call MCP Tool: add'
    assert prefect_task_name('list_mcp_tools', 'echo') == 'List MCP Tools: echo'
    assert prefect_task_name('model_compact_messages', 'test') == 'Compact Messages: test'
    assert prefect_task_name('model_count_tokens', 'test') == 'Count Tokens: test'
    assert prefect_task_name('model_cancel_suspended_response', 'test') == 'Model Cancel Suspended Response: test'
    assert prefect_task_name('handle_event') == 'Handle Stream Event'
    # The capability form's own names (pydantic-ai 2.x's `PrefectDurability`).
    assert prefect_task_name('cancel_suspended_response', 'test') == 'Cancel Suspended Response: test'
    assert prefect_task_name('get_mcp_tools', 'echo') == 'Get MCP Tools: echo'
    assert prefect_task_name('get_mcp_instructions', 'echo') == 'Get MCP Instructions: echo'
    assert prefect_task_name('discover_tools', 'crm') == 'Discover Tools: crm'
    # Without a subject: the name pydantic-ai 2.78's `PrefectOperationNamer.operation_name` gives a call.
    assert prefect_task_name('call_tool') == 'Call Tool'
    assert prefect_task_name('validate_args') == 'Validate Tool Args'
    assert prefect_task_name('call_tool', '') == 'Call Tool: '


@dataclass(frozen=True)
class ToolsetCallToolId:
    # Stands in for pydantic-ai 2.78's id of the same name on every line (the namers read the class name and fields).
    toolset_kind: str
    toolset_id: str


@dataclass(frozen=True)
class ModelRequestId:
    model_id: str | None
    streaming: bool
    model_name: str


def test_the_operation_namers_give_the_engines_own_unit_names() -> None:
    # The namers build no name themselves: each is the one the engines register (pinned to 2.78's namers'
    # output in test_capability_operations.py, on 2.78).
    call = ToolsetCallToolId('function', 'f')
    assert TemporalOperationNamer('n').operation_name(call) == temporal_activity_name('n', 'toolset_call_tool', 'f')
    assert DBOSOperationNamer('n').operation_name(call) == dbos_function_toolset_step_name('n', 'f', 'call_tool')
    assert PrefectOperationNamer().operation_name(call) == prefect_task_name('call_tool')
    mcp_call = ToolsetCallToolId('mcp', 'm')
    assert TemporalOperationNamer('n').operation_name(mcp_call) == temporal_activity_name(
        'n', 'mcp_server_call_tool', 'm'
    )
    assert DBOSOperationNamer('n').operation_name(mcp_call) == dbos_mcp_step_name('n', 'm', 'call_tool')
    assert PrefectOperationNamer().operation_name(mcp_call) == 'Call MCP Tool'
    request = ModelRequestId(None, True, 'gpt-5')
    assert TemporalOperationNamer('n').operation_name(request) == temporal_activity_name('n', 'model_request_stream')
    assert DBOSOperationNamer('n').operation_name(request) == dbos_model_step_name('n', stream=True)
    assert PrefectOperationNamer().operation_name(request) == prefect_task_name('model_request_stream', 'gpt-5')
    with pytest.raises(UserError, match='newer than this package'):
        TemporalOperationNamer('n').operation_name(ToolsetCallToolId('new', 'x'))


def test_two_toolsets_with_one_id_are_refused_and_one_toolset_twice_is_not() -> None:
    shared = FunctionToolset[None](id='shared')
    require_unique_toolset_ids([shared, shared, FunctionToolset[None](id='other')], engine='Prefect')
    with pytest.raises(UserError, match="Two toolsets have the same `id` 'dup'"):
        require_unique_toolset_ids(
            [FunctionToolset[None](id='dup'), CombinedToolset([FunctionToolset[None](id='dup')])], engine='Temporal'
        )
    # Toolsets without an id are named by value (and by tool name), not by id.
    require_unique_toolset_ids([FunctionToolset[None](), FunctionToolset[None]()], engine='DBOS')


def test_what_a_tool_says_of_its_own_unit():
    from pydantic_ai import Tool

    from durable_kernel import tool_unit_setting

    def f() -> None: ...

    def definition(**kwargs: Any) -> ToolDefinition:
        return Tool(f, **kwargs).tool_def

    assert tool_unit_setting(definition(), 'temporal') is None
    assert tool_unit_setting(definition(metadata={'temporal': False}), 'temporal') is False
    assert tool_unit_setting(definition(metadata={'temporal': {'a': 1}}), 'temporal') == {'a': 1}
    assert tool_unit_setting(definition(metadata={'prefect': False}), 'temporal') is None  # another engine's key
    with pytest.raises(UserError, match=r"metadata=\{'temporal': 'fast'\}.*must be a mapping of `ActivityConfig`"):
        tool_unit_setting(definition(metadata={'temporal': 'fast'}), 'temporal', config_label='ActivityConfig')
    if 'durable' in inspect.signature(Tool).parameters:  # pydantic-ai 2.78's `durable=`
        opted_out: dict[str, Any] = {'durable': False}
        assert tool_unit_setting(definition(**opted_out), 'temporal') is False
        assert tool_unit_setting(definition(**opted_out), None) is False
        # The engine's own key wins over `durable=False`.
        assert tool_unit_setting(definition(metadata={'temporal': {'a': 1}}, **opted_out), 'temporal') == {'a': 1}
