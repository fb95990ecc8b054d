"""Which leaf toolsets get a Prefect wrapper, which one, and which are refused.

A leaf toolset that executes tools and is left unwrapped would run its I/O in flow code, outside any task: a retried
or resumed flow run would repeat it, and nothing would say so. So every leaf is either wrapped, known to execute
nothing (`ExternalToolset`: its calls are deferred to the caller), or refused with a `UserError` at construction.
Which MCP classes exist depends on the installed pydantic-ai line; `durable_kernel` says which.
"""

from __future__ import annotations

from pydantic_ai.exceptions import UserError
from pydantic_ai.tools import AgentDepsT
from pydantic_ai.toolsets import AbstractToolset, ExternalToolset, FunctionToolset

from durable_kernel import DynamicToolset, fastmcp_toolset_class, mcp_server_classes

from ._dynamic_toolset import PrefectDynamicToolset
from ._function_toolset import PrefectFunctionToolset, reading_tool_metadata, validating_in_tasks
from ._mcp import PrefectMCPServer, PrefectMCPToolset, with_capability_names
from ._task_config import TaskConfig
from ._toolset import PrefectWrapperToolset

__all__ = ('prefectify_toolset', 'prefectify_toolset_for_capability')


def _wrap_mcp(toolset: AbstractToolset[AgentDepsT], task_config: TaskConfig) -> AbstractToolset[AgentDepsT] | None:
    """The Prefect wrapper of an MCP toolset of the installed line, or `None` if `toolset` is not one.

    1.107's `MCPServer` classes get a `PrefectMCPServer`; `MCPToolset` (both lines) and 1.107's `FastMCPToolset` get
    a `PrefectMCPToolset`.
    """
    mcp_classes = mcp_server_classes()
    if any(cls.__name__ == 'MCPServer' and isinstance(toolset, cls) for cls in mcp_classes):
        return PrefectMCPServer(toolset, task_config=task_config)
    fastmcp = fastmcp_toolset_class()
    if isinstance(toolset, mcp_classes) or (fastmcp is not None and isinstance(toolset, fastmcp)):
        return PrefectMCPToolset(toolset, task_config=task_config)
    return None


def _refuse(toolset: AbstractToolset[AgentDepsT]) -> UserError:
    return UserError(
        f'The toolset {toolset.label} ({type(toolset).__qualname__}) cannot be made durable on Prefect: its tool '
        'calls would run in the flow, outside any task, and be repeated when the flow run is retried or resumed. '
        'Wrap it before giving it to the agent, e.g. `PrefectFunctionToolset(toolset)` (each tool call becomes a '
        '`Call Tool` task; its tool listing stays in the flow and must not do I/O), or pass '
        '`prefectify_toolset_func=` to `PrefectAgent` to wrap it your way.'
    )


def prefectify_toolset(
    toolset: AbstractToolset[AgentDepsT],
    mcp_task_config: TaskConfig,
    tool_task_config: TaskConfig,
    tool_task_config_by_name: dict[str, TaskConfig | None],
) -> AbstractToolset[AgentDepsT]:
    """Wrap a leaf toolset so that its I/O runs in Prefect tasks.

    `FunctionToolset` and dynamic toolsets get `Call Tool: {tool}` tasks; `MCPToolset` (and, on pydantic-ai 1.107,
    the `MCPServer` classes and `FastMCPToolset`) get `Call MCP Tool: {tool}` and `List MCP Tools: {id}` tasks.
    An `ExternalToolset` (which executes nothing) and a toolset already wrapped for Prefect are returned unchanged.

    Args:
        toolset: The leaf toolset.
        mcp_task_config: The task config of MCP tasks.
        tool_task_config: The task config of every tool call not named in `tool_task_config_by_name`.
        tool_task_config_by_name: Per-tool configs; `None` runs that tool without a task.

    Returns:
        The wrapped toolset, or `toolset` itself.

    Raises:
        UserError: For any other toolset: its calls would run outside any task.
    """
    if isinstance(toolset, (PrefectWrapperToolset, ExternalToolset)):
        return toolset
    if isinstance(toolset, FunctionToolset):
        return PrefectFunctionToolset(
            toolset, task_config=tool_task_config, tool_task_config=dict(tool_task_config_by_name)
        )
    if isinstance(toolset, DynamicToolset):
        # Both forms, as pydantic-ai 2.x's `PrefectAgent` and `PrefectDurability` do where they have the task.
        return validating_in_tasks(
            PrefectDynamicToolset(
                toolset, task_config=tool_task_config, tool_task_config=dict(tool_task_config_by_name)
            )
        )
    wrapped_mcp = _wrap_mcp(toolset, mcp_task_config)
    if wrapped_mcp is not None:
        return wrapped_mcp
    raise _refuse(toolset)


def prefectify_toolset_for_capability(
    toolset: AbstractToolset[AgentDepsT],
    mcp_task_config: TaskConfig,
    tool_task_config: TaskConfig,
    tool_task_config_by_name: dict[str, TaskConfig | None],
) -> AbstractToolset[AgentDepsT]:
    """[`prefectify_toolset`][durable_prefect.prefectify_toolset] as the capability form (`PrefectDurability`) uses it.

    The same wrappers, plus two rules of pydantic-ai 2.x's capability form: a tool's `metadata['prefect']`
    (`TaskConfig` or `False`) configures its task, and MCP tool listing is named `Get MCP Tools: {id}`. A toolset
    the user wrapped already is left as it is.
    """
    wrapped = prefectify_toolset(toolset, mcp_task_config, tool_task_config, tool_task_config_by_name)
    if wrapped is toolset:
        return wrapped
    if isinstance(wrapped, PrefectFunctionToolset):
        return validating_in_tasks(reading_tool_metadata(wrapped))
    if isinstance(wrapped, (PrefectMCPServer, PrefectMCPToolset)):
        return with_capability_names(wrapped)
    return wrapped  # pragma: no cover - prefectify_toolset makes one of the above
