"""Engine-agnostic rules shared by the durable engine packages (`durable-temporal`, `durable-dbos`, `durable-prefect`).

Nothing here imports an engine SDK: the kernel says *what* crosses a durable boundary and *how* it is named,
merged and ordered; each engine package binds those rules to its own primitives.
"""

from ._compat import (
    DERIVED_FIELDS_2,
    PYDANTIC_AI_2,
    PYDANTIC_AI_VERSION,
    RUN_KEYWORDS_2,
    cancel_suspended_response,
    completed_streamed_response,
    fastmcp_toolset_class,
    mcp_server_classes,
    mcp_tool_for_tool_def,
    prepare_messages,
    record_response_model_id,
    request_telemetry_ids,
    restore_request_telemetry_ids,
    unknown_mcp_toolset_class,
)
from ._config import merge_config, merge_unique
from ._context_values import scoped_context_value
from ._control_flow import (
    ToolApprovalRequired,
    ToolCallDeferred,
    ToolOutcome,
    ToolRetryRequested,
    ToolReturned,
    capture_tool_outcome,
    outcome_from_exception,
    unwrap_tool_outcome,
)
from ._event_batches import forward_event_batches
from ._model_stream import consume_model_stream
from ._names import (
    PrefectTaskKind,
    TemporalActivityKind,
    dbos_mcp_step_name,
    dbos_model_step_name,
    dbos_tool_step_name,
    dbos_workflow_name,
    prefect_flow_name,
    prefect_task_name,
    require_agent_name,
    temporal_activity_name,
)
from ._run_arguments import OverrideArguments, RunArguments, UserPrompt
from ._run_context import RUN_CONTEXT_FIELDS, PartialRunContext, rebuild_run_context
from ._tool_call_order import (
    DEFAULT_PARALLEL_EXECUTION_MODE,
    DurableParallelExecutionMode,
    ordered_tool_call_events,
    require_durable_parallel_execution_mode,
)
from ._toolsets import leaf_toolsets, replace_leaf_toolsets, require_toolset_id
from ._wrapper_agent import DurableWrapperAgent

__all__ = (
    'DERIVED_FIELDS_2',
    'PYDANTIC_AI_2',
    'PYDANTIC_AI_VERSION',
    'RUN_KEYWORDS_2',
    'cancel_suspended_response',
    'completed_streamed_response',
    'fastmcp_toolset_class',
    'mcp_server_classes',
    'mcp_tool_for_tool_def',
    'unknown_mcp_toolset_class',
    'prepare_messages',
    'record_response_model_id',
    'request_telemetry_ids',
    'restore_request_telemetry_ids',
    'DEFAULT_PARALLEL_EXECUTION_MODE',
    'DurableParallelExecutionMode',
    'ordered_tool_call_events',
    'require_durable_parallel_execution_mode',
    'RUN_CONTEXT_FIELDS',
    'DurableWrapperAgent',
    'OverrideArguments',
    'PartialRunContext',
    'PrefectTaskKind',
    'RunArguments',
    'TemporalActivityKind',
    'ToolApprovalRequired',
    'ToolCallDeferred',
    'ToolOutcome',
    'ToolRetryRequested',
    'ToolReturned',
    'UserPrompt',
    'capture_tool_outcome',
    'consume_model_stream',
    'dbos_mcp_step_name',
    'dbos_model_step_name',
    'dbos_tool_step_name',
    'dbos_workflow_name',
    'forward_event_batches',
    'leaf_toolsets',
    'merge_config',
    'merge_unique',
    'outcome_from_exception',
    'prefect_flow_name',
    'prefect_task_name',
    'rebuild_run_context',
    'replace_leaf_toolsets',
    'require_agent_name',
    'require_toolset_id',
    'scoped_context_value',
    'temporal_activity_name',
    'unwrap_tool_outcome',
)
