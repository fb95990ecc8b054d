"""Unit names from pydantic-ai 2.78's operation ids: the namers its engine packages export, for code that uses them.

pydantic-ai 2.78 names each durable unit from a typed operation id (`ModelRequestId`, `ToolsetCallToolId`,
`CapabilityOperationId`, ...) with a namer per engine (`TemporalOperationNamer`, `DBOSOperationNamer`,
`PrefectOperationNamer`). Ours take the same ids, read by their class name and fields (pydantic-ai's durable execution
is never imported here), and return the names our engines give the same units, which are 2.78's: they are persisted
data. Only `operation_name` is offered (2.78's `invocation_name` returns a type of its own).

Every name is built by the kernel's name functions (`_names.py`) the engines name their units with, so each unit name
has one construction: a namer only picks the function and the kind.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic_ai.exceptions import UserError

from ._names import (
    PrefectTaskKind,
    TemporalActivityKind,
    dbos_capability_operation_step_name,
    dbos_dynamic_toolset_step_name,
    dbos_event_stream_handler_step_name,
    dbos_function_toolset_step_name,
    dbos_mcp_step_name,
    dbos_model_step_name,
    prefect_capability_operation_task_name,
    prefect_task_name,
    temporal_activity_name_with_prefix,
    temporal_activity_prefix,
    temporal_capability_operation_activity_name,
)

__all__ = ('DBOSOperationNamer', 'PrefectOperationNamer', 'TemporalOperationNamer')

_ModelOperation = Literal['cancel_suspended_response', 'compact_messages', 'count_tokens']
_ToolsetOperation = Literal['get_tools', 'validate_args', 'call_tool']

# The model operations other than a request, by the class name of their id.
_MODEL_OPERATIONS: dict[str, _ModelOperation] = {
    'ModelCancelSuspendedResponseId': 'cancel_suspended_response',
    'ModelCompactMessagesId': 'compact_messages',
    'ModelCountTokensId': 'count_tokens',
}

_TOOLSET_OPERATIONS: dict[str, _ToolsetOperation] = {
    'ToolsetGetToolsId': 'get_tools',
    'ToolsetValidateToolArgumentsId': 'validate_args',
    'ToolsetCallToolId': 'call_tool',
}

_TEMPORAL_MODEL_KINDS: dict[_ModelOperation, TemporalActivityKind] = {
    'cancel_suspended_response': 'model_cancel_suspended_response',
    'compact_messages': 'model_compact_messages',
    'count_tokens': 'model_count_tokens',
}

# A toolset operation's activity kind, by the id's toolset kind: a function toolset's call and validation activities
# are `toolset__...`, its listing `function_toolset__...` (2.x's names).
_TEMPORAL_TOOLSET_KINDS: dict[tuple[str, _ToolsetOperation], TemporalActivityKind] = {
    ('function', 'get_tools'): 'function_toolset_get_tools',
    ('function', 'validate_args'): 'toolset_validate_args',
    ('function', 'call_tool'): 'toolset_call_tool',
    ('mcp', 'get_tools'): 'mcp_server_get_tools',
    ('mcp', 'validate_args'): 'mcp_server_validate_args',
    ('mcp', 'call_tool'): 'mcp_server_call_tool',
    ('dynamic', 'get_tools'): 'dynamic_toolset_get_tools',
    ('dynamic', 'validate_args'): 'dynamic_toolset_validate_args',
    ('dynamic', 'call_tool'): 'dynamic_toolset_call_tool',
}

_PREFECT_MODEL_KINDS: dict[_ModelOperation, PrefectTaskKind] = {
    # The capability form's name (the wrapper's `PrefectModel` says `Model Cancel Suspended Response`), as 2.78's.
    'cancel_suspended_response': 'cancel_suspended_response',
    'compact_messages': 'model_compact_messages',
    'count_tokens': 'model_count_tokens',
}


def _kind(operation_id: object) -> str:
    return type(operation_id).__name__


def _field(operation_id: object, name: str) -> Any:
    return getattr(operation_id, name)


def _unknown(operation_id: object) -> UserError:
    return UserError(f'No unit name is known for the operation id {operation_id!r}: it is newer than this package.')


def _toolset_operation(operation_id: object) -> tuple[str, _ToolsetOperation]:
    """The toolset kind (`function`, `mcp`, `dynamic`) and operation of a toolset operation id, or `UserError`."""
    operation = _TOOLSET_OPERATIONS.get(_kind(operation_id))
    if operation is None:
        raise _unknown(operation_id)
    return _field(operation_id, 'toolset_kind'), operation


class TemporalOperationNamer:
    """The Temporal activity names of an agent's operations, as pydantic-ai 2.78's `TemporalOperationNamer` gives them.

    Args:
        agent_name: The agent's name (`agent__{name}__...`).
    """

    def __init__(self, agent_name: str) -> None:
        self._prefix = temporal_activity_prefix(agent_name)

    def operation_name(self, operation_id: Any) -> str:
        """The activity name of the operation a pydantic-ai 2.78 operation id identifies.

        Raises:
            UserError: The id is of a kind this package does not know.
        """
        kind = _kind(operation_id)
        prefix = self._prefix
        if kind == 'CapabilityOperationId':
            return temporal_capability_operation_activity_name(
                prefix, _field(operation_id, 'capability_id'), _field(operation_id, 'operation')
            )
        if kind == 'ModelRequestId':
            streaming = _field(operation_id, 'streaming')
            return temporal_activity_name_with_prefix(prefix, 'model_request_stream' if streaming else 'model_request')
        if kind in _MODEL_OPERATIONS:
            return temporal_activity_name_with_prefix(prefix, _TEMPORAL_MODEL_KINDS[_MODEL_OPERATIONS[kind]])
        if kind == 'EventStreamHandlerId':
            return temporal_activity_name_with_prefix(prefix, 'event_stream_handler')
        if kind == 'ToolsetGetInstructionsId':
            toolset_id = _field(operation_id, 'toolset_id')
            return temporal_activity_name_with_prefix(prefix, 'mcp_server_get_instructions', toolset_id)
        toolset_kind, operation = _toolset_operation(operation_id)
        activity_kind = _TEMPORAL_TOOLSET_KINDS.get((toolset_kind, operation))
        if activity_kind is None:
            raise _unknown(operation_id)
        return temporal_activity_name_with_prefix(prefix, activity_kind, _field(operation_id, 'toolset_id'))


class DBOSOperationNamer:
    """The DBOS step names of an agent's operations, as pydantic-ai 2.78's `DBOSOperationNamer` gives them.

    Args:
        agent_name: The agent's name (`{name}__...`).
        default_model_id: Accepted for 2.78's signature; DBOS step names carry no model.
    """

    def __init__(self, agent_name: str, *, default_model_id: str = 'default') -> None:
        self._agent_name = agent_name

    def operation_name(self, operation_id: Any) -> str:
        """The step name of the operation a pydantic-ai 2.78 operation id identifies.

        Raises:
            UserError: The id is of a kind this package does not know.
        """
        kind = _kind(operation_id)
        agent = self._agent_name
        if kind == 'CapabilityOperationId':
            return dbos_capability_operation_step_name(
                agent, _field(operation_id, 'capability_id'), _field(operation_id, 'operation')
            )
        if kind == 'ModelRequestId':
            return dbos_model_step_name(agent, stream=bool(_field(operation_id, 'streaming')))
        if kind in _MODEL_OPERATIONS:
            return dbos_model_step_name(agent, operation=_MODEL_OPERATIONS[kind])
        if kind == 'EventStreamHandlerId':
            return dbos_event_stream_handler_step_name(agent)
        if kind == 'ToolsetGetInstructionsId':
            return dbos_mcp_step_name(agent, _field(operation_id, 'toolset_id'), 'get_instructions')
        toolset_kind, operation = _toolset_operation(operation_id)
        toolset_id = _field(operation_id, 'toolset_id')
        if toolset_kind == 'function':
            return dbos_function_toolset_step_name(agent, toolset_id, operation)
        if toolset_kind == 'mcp':
            return dbos_mcp_step_name(agent, toolset_id, operation)
        if toolset_kind == 'dynamic':
            return dbos_dynamic_toolset_step_name(agent, toolset_id, operation)
        raise _unknown(operation_id)


class PrefectOperationNamer:
    """The Prefect task names of operations, as pydantic-ai 2.78's `PrefectOperationNamer` gives them.

    A call's task run adds the tool's name (`Call Tool: {tool}`), as `invocation_name` does in 2.78.
    """

    def operation_name(self, operation_id: Any) -> str:
        """The task name of the operation a pydantic-ai 2.78 operation id identifies.

        Raises:
            UserError: The id is of a kind this package does not know.
        """
        kind = _kind(operation_id)
        if kind == 'CapabilityOperationId':
            return prefect_capability_operation_task_name(
                _field(operation_id, 'capability_id'), _field(operation_id, 'operation')
            )
        if kind == 'ModelRequestId':
            streaming = _field(operation_id, 'streaming')
            model_name = _field(operation_id, 'model_name')
            return prefect_task_name('model_request_stream' if streaming else 'model_request', model_name)
        if kind in _MODEL_OPERATIONS:
            return prefect_task_name(_PREFECT_MODEL_KINDS[_MODEL_OPERATIONS[kind]], _field(operation_id, 'model_name'))
        if kind == 'EventStreamHandlerId':
            return prefect_task_name('handle_event')
        if kind == 'ToolsetGetInstructionsId':
            return prefect_task_name('get_mcp_instructions', _field(operation_id, 'toolset_id'))
        toolset_kind, operation = _toolset_operation(operation_id)
        mcp = toolset_kind == 'mcp'
        if operation == 'get_tools':
            return prefect_task_name('get_mcp_tools' if mcp else 'discover_tools', _field(operation_id, 'toolset_id'))
        # A call or a validation: 2.78's operation name is the task's name without the tool (the run adds it).
        if operation == 'validate_args':
            return prefect_task_name('validate_args')
        return prefect_task_name('call_mcp_tool' if mcp else 'call_tool')
