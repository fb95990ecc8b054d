"""Names of durable units (activities, steps, tasks, workflows, flows).

These names are recorded in engine histories, so they are compatibility data: they match the reference
implementation exactly, which lets workflows it started continue on our workers and the reverse.
"""

from __future__ import annotations

from typing import Literal

from pydantic_ai.exceptions import UserError

__all__ = (
    'PrefectTaskKind',
    'TemporalActivityKind',
    'dbos_capability_operation_step_name',
    'dbos_dynamic_toolset_step_name',
    'dbos_child_workflow_name',
    'dbos_event_stream_handler_step_name',
    'dbos_external_event_ask_step_name',
    'dbos_function_toolset_step_name',
    'dbos_mcp_step_name',
    'dbos_model_step_name',
    'dbos_tool_step_name',
    'dbos_workflow_name',
    'prefect_capability_operation_task_name',
    'prefect_flow_name',
    'prefect_task_name',
    'require_agent_name',
    'temporal_activity_name',
    'temporal_activity_name_with_prefix',
    'temporal_capability_operation_activity_name',
    'temporal_activity_prefix',
    'temporal_child_workflow_name',
)

TemporalActivityKind = Literal[
    'event_stream_handler',
    'model_request',
    'model_request_stream',
    'model_compact_messages',
    'model_cancel_suspended_response',
    'model_count_tokens',
    'external_event_ask',
    'toolset_call_tool',
    'toolset_validate_args',
    'dynamic_toolset_get_tools',
    'dynamic_toolset_call_tool',
    'dynamic_toolset_validate_args',
    'mcp_server_get_instructions',
    'mcp_server_get_tools',
    'mcp_server_call_tool',
    # Two kinds no activity of ours has, named for `TemporalOperationNamer` as pydantic-ai 2.78 names them: a function
    # toolset's listing and an MCP server's argument validation.
    'function_toolset_get_tools',
    'mcp_server_validate_args',
]


def require_agent_name(name: str | None, *, engine: str, parameter: str = 'name') -> str:
    """Return the agent name, or raise a `UserError` that says how to give one.

    Args:
        name: The name passed to the wrapper, or else the wrapped agent's.
        engine: The engine's name, for the message.
        parameter: The constructor parameter to mention.

    Returns:
        The name.

    Raises:
        UserError: No name was given.
    """
    if not name:
        raise UserError(
            f'An agent needs a unique, stable `name` to be used with {engine}: its durable units are named after it. '
            f'Pass `name=...` to `Agent(...)` or to the {engine} agent wrapper (`{parameter}=`).'
        )
    return name


def temporal_activity_name(agent_name: str, kind: TemporalActivityKind, toolset_id: str | None = None) -> str:
    """The Temporal activity name for one kind of work of an agent.

    Args:
        agent_name: The agent's name.
        kind: What the activity does.
        toolset_id: The toolset's id, for toolset kinds.

    Returns:
        For example `agent__support__toolset__<agent>__call_tool`.
    """
    return temporal_activity_name_with_prefix(temporal_activity_prefix(agent_name), kind, toolset_id)


def temporal_activity_prefix(agent_name: str) -> str:
    """What every activity name of an agent starts with: `agent__{name}`."""
    return f'agent__{agent_name}'


def temporal_activity_name_with_prefix(prefix: str, kind: TemporalActivityKind, toolset_id: str | None = None) -> str:
    """`temporal_activity_name` from the agent's prefix (`temporal_activity_prefix`): the one place names are made.

    They are persisted compatibility data (identical to pydantic-ai's, so that running workflows move between the
    two): every activity of `durable-temporal` is named here.
    """
    family_operation = _TOOLSET_ACTIVITY_PARTS.get(kind)
    if family_operation is None:
        return f'{prefix}__{kind}'
    if not toolset_id:
        raise ValueError(f'activity kind {kind!r} needs a toolset id')
    family, operation = family_operation
    return f'{prefix}__{family}__{toolset_id}__{operation}'


def temporal_capability_operation_activity_name(prefix: str, capability_id: str, operation: str) -> str:
    """The activity of a capability's durable operation: `agent__{name}__capability__{id}__{operation}` (2.68's)."""
    return f'{prefix}__capability__{capability_id}__{operation}'


def dbos_capability_operation_step_name(agent_name: str, capability_id: str, operation: str) -> str:
    """The DBOS step of a capability's durable operation: `{agent}__capability__{id}.{operation}` (2.68's)."""
    return f'{agent_name}__capability__{capability_id}.{operation}'


def prefect_capability_operation_task_name(capability_id: str, operation: str) -> str:
    """The Prefect task of a capability's durable operation: `Capability: {id}.{operation}` (2.68's)."""
    return f'Capability: {capability_id}.{operation}'


_TOOLSET_ACTIVITY_PARTS: dict[str, tuple[str, str]] = {
    'toolset_call_tool': ('toolset', 'call_tool'),
    'toolset_validate_args': ('toolset', 'validate_args'),
    'dynamic_toolset_get_tools': ('dynamic_toolset', 'get_tools'),
    'dynamic_toolset_call_tool': ('dynamic_toolset', 'call_tool'),
    'dynamic_toolset_validate_args': ('dynamic_toolset', 'validate_args'),
    'mcp_server_get_instructions': ('mcp_server', 'get_instructions'),
    'mcp_server_get_tools': ('mcp_server', 'get_tools'),
    'mcp_server_call_tool': ('mcp_server', 'call_tool'),
    'function_toolset_get_tools': ('function_toolset', 'get_tools'),
    'mcp_server_validate_args': ('mcp_server', 'validate_args'),
}


def temporal_child_workflow_name(prefix: str, toolset_id: str) -> str:
    """The child workflow type of a function toolset's tools that select one: its call activity's name + `__child_workflow`.

    For example `agent__{name}__toolset__{id}__call_tool__child_workflow`, pydantic-ai 2.68's name.
    """
    return f'{temporal_activity_name_with_prefix(prefix, "toolset_call_tool", toolset_id)}__child_workflow'


def dbos_external_event_ask_step_name(agent_name: str, wait_name: str) -> str:
    """The DBOS step that hands a wait's token to `ask`: `{agent}__external_event.{wait name}.ask`.

    pydantic-ai 2.78's own DBOS capability refuses such waits, so it has no name for it; this is the name Pydantic AI
    Harness gives the same step on AWS Lambda durable functions.
    """
    return f'{agent_name}__external_event.{wait_name}.ask'


def dbos_workflow_name(agent_name: str, entry_point: Literal['run', 'run_sync']) -> str:
    """The DBOS workflow name of an agent entry point: `{agent}.run` or `{agent}.run_sync`."""
    return f'{agent_name}.{entry_point}'


def dbos_model_step_name(
    agent_name: str,
    *,
    stream: bool = False,
    operation: Literal['compact_messages', 'cancel_suspended_response', 'count_tokens'] | None = None,
) -> str:
    """The DBOS step name of a model operation: `{agent}__model.request`, `.request_stream` or `.{operation}`.

    `operation` names the other model operations that talk to the provider (`compact_messages`, and pydantic-ai
    2.x's `cancel_suspended_response` and, from 2.78, `count_tokens`), named as the reference names them.
    """
    if operation is not None:
        return f'{agent_name}__model.{operation}'
    return f'{agent_name}__model.request_stream' if stream else f'{agent_name}__model.request'


def _dbos_toolset_step_name(agent_name: str, family: str, toolset_id: str | None, operation: str) -> str:
    # The one construction of a toolset's DBOS step names: `{agent}__{family}__{id}.{operation}`, no `__{id}` for no
    # id (`None`: the reference accepts a function toolset or MCP server without one).
    base = f'{agent_name}__{family}' if toolset_id is None else f'{agent_name}__{family}__{toolset_id}'
    return f'{base}.{operation}'


def dbos_mcp_step_name(
    agent_name: str,
    toolset_id: str | None,
    operation: Literal['get_tools', 'get_instructions', 'validate_args', 'call_tool'],
) -> str:
    """The DBOS step name of an MCP operation: `{agent}__mcp_server__{id}.{operation}` (no `__{id}` without an id).

    Our steps are `get_tools`, `get_instructions` and `call_tool`; `validate_args` is named for `DBOSOperationNamer`.
    """
    # An empty id counts as none here, as it always has for MCP step names.
    return _dbos_toolset_step_name(agent_name, 'mcp_server', toolset_id or None, operation)


def dbos_function_toolset_step_name(
    agent_name: str, toolset_id: str, operation: Literal['get_tools', 'validate_args', 'call_tool']
) -> str:
    """pydantic-ai 2.78's journal name of a function toolset's operation: `{agent}__function_toolset__{id}.{operation}`.

    No step of ours has it (ours are `dbos_tool_step_name`'s): it names `DBOSOperationNamer`'s operations and, with
    `__child_workflow` appended, a tool's child workflow (`dbos_child_workflow_name`).
    """
    return _dbos_toolset_step_name(agent_name, 'function_toolset', toolset_id, operation)


def dbos_dynamic_toolset_step_name(
    agent_name: str, toolset_id: str, operation: Literal['get_tools', 'validate_args', 'call_tool']
) -> str:
    """The DBOS step name of a dynamic toolset's operation: `{agent}__dynamic_toolset__{id}.{operation}`.

    Only the capability form (`DBOSDurability`) records these, as pydantic-ai 2.x's `DBOSDurability` names them: one
    step builds the toolset and lists its tools (and instructions), one per call builds it again and calls the tool.
    A dynamic capability's toolset is such a toolset, with the capability's id. Where the installed pydantic-ai does
    (`ARGS_VALIDATOR_UNITS`), a tool's `args_validator` runs in a `validate_args` step of its own before the call.
    """
    return _dbos_toolset_step_name(agent_name, 'dynamic_toolset', toolset_id, operation)


def dbos_event_stream_handler_step_name(agent_name: str) -> str:
    """The DBOS step of one workflow-side event handed to the event stream handler: `{agent}__event_stream_handler`.

    Only the capability form (`DBOSDurability`) records it, once per event that is not part of a streamed model
    response (those reach the handler inside the model step), as pydantic-ai 2.x's `DBOSDurability` does.
    """
    return f'{agent_name}__event_stream_handler'


def dbos_tool_step_name(agent_name: str, toolset_id: str | None, tool_name: str) -> str:
    """The DBOS step name of a function-tool call: `{agent}__toolset__{id}.call_tool.{tool}`.

    The reference runs function tools as plain workflow code (so a crash re-runs them); ours records each call as
    a step, named in the same family as the other steps. A toolset without an id (which the reference accepts) gives
    `{agent}__toolset.call_tool.{tool}`, as an MCP server without an id gives `{agent}__mcp_server.call_tool`.
    """
    return f'{_dbos_toolset_step_name(agent_name, "toolset", toolset_id or None, "call_tool")}.{tool_name}'


def dbos_child_workflow_name(agent_name: str, toolset_id: str) -> str:
    """The DBOS child workflow of a function toolset's tools that select one: `{agent}__function_toolset__{id}.call_tool__child_workflow`.

    pydantic-ai 2.68's name (its journal naming of a function toolset's call-tool operation, `__child_workflow`
    appended), kept so that a child workflow it recorded is recovered by ours.
    """
    return f'{dbos_function_toolset_step_name(agent_name, toolset_id, "call_tool")}__child_workflow'


def prefect_flow_name(agent_name: str, entry_point: Literal['run', 'run_sync']) -> str:
    """The Prefect flow name of an agent entry point: `{agent} Run` or `{agent} Sync Run`."""
    return f'{agent_name} Run' if entry_point == 'run' else f'{agent_name} Sync Run'


PrefectTaskKind = Literal[
    'model_request',
    'model_request_stream',
    'model_cancel_suspended_response',
    'model_compact_messages',
    'model_count_tokens',
    'call_tool',
    'validate_args',
    'call_mcp_tool',
    'list_mcp_tools',
    'handle_event',
    'cancel_suspended_response',
    'get_mcp_tools',
    'get_mcp_instructions',
    'discover_tools',
]

_PREFECT_TASK_TEMPLATES: dict[str, str] = {
    'model_request': 'Model Request: {}',
    'model_request_stream': 'Model Request (Streaming): {}',
    # `cancel_suspended_response` (2.x only) is named as by the reference `PrefectModel`; the reference wrapper agent
    # runs `compact_messages` (both lines) outside any task, so it is named as by 2.x's `PrefectOperationNamer`.
    'model_cancel_suspended_response': 'Model Cancel Suspended Response: {}',
    'model_compact_messages': 'Compact Messages: {}',
    # Counting a request's tokens ahead of it, a task from pydantic-ai 2.78 on (both forms there: one name).
    'model_count_tokens': 'Count Tokens: {}',
    'call_tool': 'Call Tool: {}',
    # Where the installed pydantic-ai validates a tool's arguments in a task of its own (`ARGS_VALIDATOR_UNITS`).
    'validate_args': 'Validate Tool Args: {}',
    'call_mcp_tool': 'Call MCP Tool: {}',
    'list_mcp_tools': 'List MCP Tools: {}',
    'handle_event': 'Handle Stream Event',
    # The capability form (`PrefectDurability`) names these three as pydantic-ai 2.x's `PrefectDurability` does; its
    # other tasks share the wrapper's names.
    'cancel_suspended_response': 'Cancel Suspended Response: {}',
    'get_mcp_tools': 'Get MCP Tools: {}',
    'get_mcp_instructions': 'Get MCP Instructions: {}',
    # A dynamic toolset (with an id) built and listed in a task, in both forms, as pydantic-ai 2.68+ names it.
    'discover_tools': 'Discover Tools: {}',
}


def prefect_task_name(kind: PrefectTaskKind, subject: str | None = None) -> str:
    """The Prefect task name for one kind of work: `Model Request: {model}`, `Call Tool: {tool}`, ...

    Args:
        kind: What the task does.
        subject: The model name or tool name (unused for `handle_event`). `None` gives the name without it
            (`Call Tool`), as pydantic-ai 2.78's `PrefectOperationNamer.operation_name` names a call's operation.

    Returns:
        The task name.
    """
    template = _PREFECT_TASK_TEMPLATES[kind]
    if subject is None:
        return template.removesuffix(': {}')
    return template.format(subject)
