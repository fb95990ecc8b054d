"""Durable pydantic-ai agents on Prefect: agent runs are flows, model requests and tool calls are tasks."""

from durable_kernel import DepsResolver, DurableAgentRunEvents, EventStreamTopic, UnitRetryEvent

from ._agent import PrefectAgent
from ._agent_base import PrefectifyToolsetFunc
from ._cache_policy import (
    DEFAULT_CACHE_POLICY,
    AgentRunScope,
    InputsByValue,
    KeyedTaskInput,
    canonical_value,
    value_key,
)
from ._durability import PrefectDurability
from ._dynamic_toolset import PrefectDynamicToolset
from ._foreign_runs import UnfinishedForeignAgentRunWarning
from ._function_toolset import PrefectFunctionToolset
from ._live_events import stream_agent_events
from ._mcp import PrefectMCPServer, PrefectMCPToolset
from ._model import PrefectModel
from ._prefectify import prefectify_toolset
from ._task_config import DEFAULT_TASK_CONFIG, TaskConfig, merge_task_config
from ._toolset import PrefectWrapperToolset

DEFAULT_PYDANTIC_AI_CACHE_POLICY = DEFAULT_CACHE_POLICY
"""The same policy under the reference implementation's name, so that imports can be swapped."""

__all__ = (
    'DEFAULT_PYDANTIC_AI_CACHE_POLICY',
    'DEFAULT_CACHE_POLICY',
    'DEFAULT_TASK_CONFIG',
    'AgentRunScope',
    'DepsResolver',
    'DurableAgentRunEvents',
    'EventStreamTopic',
    'InputsByValue',
    'KeyedTaskInput',
    'PrefectAgent',
    'PrefectDurability',
    'PrefectDynamicToolset',
    'PrefectFunctionToolset',
    'PrefectMCPServer',
    'PrefectMCPToolset',
    'PrefectModel',
    'PrefectWrapperToolset',
    'PrefectifyToolsetFunc',
    'TaskConfig',
    'UnfinishedForeignAgentRunWarning',
    'UnitRetryEvent',
    'canonical_value',
    'merge_task_config',
    'prefectify_toolset',
    'stream_agent_events',
    'value_key',
)
