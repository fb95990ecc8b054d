"""Which leaf toolsets get a Prefect wrapper, and which one."""

from __future__ import annotations

import importlib
from typing import Any

from pydantic_ai.tools import AgentDepsT
from pydantic_ai.toolsets import AbstractToolset, FunctionToolset
from pydantic_ai.toolsets._dynamic import DynamicToolset

from ._function_toolset import PrefectDynamicToolset, PrefectFunctionToolset
from ._mcp import PrefectMCPServer, PrefectMCPToolset
from ._task_config import TaskConfig

__all__ = ('prefectify_toolset',)


def _is_mcp_server(toolset: AbstractToolset[AgentDepsT]) -> bool:
    try:
        from pydantic_ai.mcp import MCPServer
    except ImportError:  # pragma: no cover - the `mcp` extra is not installed
        return False
    return isinstance(toolset, MCPServer)


def _is_mcp_toolset(toolset: AbstractToolset[AgentDepsT]) -> bool:
    try:
        from pydantic_ai.mcp import MCPToolset
    except ImportError:  # pragma: no cover - the `mcp`/`fastmcp` extras are not installed
        pass
    else:
        if isinstance(toolset, MCPToolset):
            return True
    try:
        fastmcp_module = importlib.import_module('pydantic_ai.toolsets.fastmcp')
    except ImportError:  # pragma: no cover - the `fastmcp` extra is not installed
        return False
    # Looked up by name: `FastMCPToolset` is deprecated in favour of `MCPToolset`, but users still pass it.
    fastmcp_toolset: type[Any] = fastmcp_module.FastMCPToolset
    return isinstance(toolset, fastmcp_toolset)


def prefectify_toolset(
    toolset: AbstractToolset[AgentDepsT],
    mcp_task_config: TaskConfig,
    tool_task_config: TaskConfig,
    tool_task_config_by_name: dict[str, TaskConfig | None],
) -> AbstractToolset[AgentDepsT]:
    """Wrap a leaf toolset so that its IO runs in Prefect tasks; other toolsets are returned unchanged.

    `FunctionToolset` and dynamic toolsets get `Call Tool: {tool}` tasks; `MCPServer`, `MCPToolset` and
    `FastMCPToolset` get `Call MCP Tool: {tool}` and `List MCP Tools: {id}` tasks.

    Args:
        toolset: The leaf toolset.
        mcp_task_config: The task config of MCP tasks.
        tool_task_config: The task config of every tool call not named in `tool_task_config_by_name`.
        tool_task_config_by_name: Per-tool configs; `None` runs that tool without a task.

    Returns:
        The wrapped toolset, or `toolset` itself.
    """
    if isinstance(toolset, FunctionToolset):
        return PrefectFunctionToolset(
            toolset, task_config=tool_task_config, tool_task_config=dict(tool_task_config_by_name)
        )
    if isinstance(toolset, DynamicToolset):
        return PrefectDynamicToolset(
            toolset, task_config=tool_task_config, tool_task_config=dict(tool_task_config_by_name)
        )
    if _is_mcp_server(toolset):
        return PrefectMCPServer(toolset, task_config=mcp_task_config)
    if _is_mcp_toolset(toolset):
        return PrefectMCPToolset(toolset, task_config=mcp_task_config)
    return toolset
