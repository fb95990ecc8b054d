"""Unit names from pydantic-ai 2.78's operation ids: the namers its engine packages export, for code that uses them.

pydantic-ai 2.78 names each durable unit from a typed operation id (`ModelRequestId`, `ToolsetCallToolId`,
`CapabilityOperationId`, ...) with a namer per engine (`TemporalOperationNamer`, `DBOSOperationNamer`,
`PrefectOperationNamer`). Ours take the same ids, read by their class name and fields (pydantic-ai's durable execution
is never imported here), and return the names our engines give the same units, which are 2.78's: they are persisted
data. Only `operation_name` is offered (2.78's `invocation_name` returns a type of its own).
"""

from __future__ import annotations

from typing import Any

from pydantic_ai.exceptions import UserError

from ._names import (
    dbos_capability_operation_step_name,
    prefect_capability_operation_task_name,
    temporal_activity_prefix,
    temporal_capability_operation_activity_name,
)

__all__ = ('DBOSOperationNamer', 'PrefectOperationNamer', 'TemporalOperationNamer')

_MODEL_OPERATIONS: dict[str, str] = {
    'ModelCancelSuspendedResponseId': 'cancel_suspended_response',
    'ModelCompactMessagesId': 'compact_messages',
    'ModelCountTokensId': 'count_tokens',
}


def _kind(operation_id: object) -> str:
    return type(operation_id).__name__


def _field(operation_id: object, name: str) -> Any:
    return getattr(operation_id, name)


def _family(toolset_kind: str) -> str:
    # How 2.x names a toolset kind in unit names: an MCP server's units are `mcp_server`, the others `{kind}_toolset`.
    return 'mcp_server' if toolset_kind == 'mcp' else f'{toolset_kind}_toolset'


def _unknown(operation_id: object) -> UserError:
    return UserError(f'No unit name is known for the operation id {operation_id!r}: it is newer than this package.')


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
            return (
                f'{prefix}__model_request_stream' if _field(operation_id, 'streaming') else f'{prefix}__model_request'
            )
        if kind in _MODEL_OPERATIONS:
            return f'{prefix}__model_{_MODEL_OPERATIONS[kind]}'
        if kind == 'EventStreamHandlerId':
            return f'{prefix}__event_stream_handler'
        if kind == 'ToolsetGetInstructionsId':
            return f'{prefix}__mcp_server__{_field(operation_id, "toolset_id")}__get_instructions'
        operation = {'ToolsetGetToolsId': 'get_tools', 'ToolsetValidateToolArgumentsId': 'validate_args'}.get(
            kind, 'call_tool' if kind == 'ToolsetCallToolId' else None
        )
        if operation is None:
            raise _unknown(operation_id)
        toolset_kind = _field(operation_id, 'toolset_kind')
        # A function toolset's call and validation activities are `toolset__...`, its listing `function_toolset__...`.
        family = 'toolset' if toolset_kind == 'function' and operation != 'get_tools' else _family(toolset_kind)
        return f'{prefix}__{family}__{_field(operation_id, "toolset_id")}__{operation}'


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
            return f'{agent}__model.request_stream' if _field(operation_id, 'streaming') else f'{agent}__model.request'
        if kind in _MODEL_OPERATIONS:
            return f'{agent}__model.{_MODEL_OPERATIONS[kind]}'
        if kind == 'EventStreamHandlerId':
            return f'{agent}__event_stream_handler'
        if kind == 'ToolsetGetInstructionsId':
            return f'{agent}__mcp_server__{_field(operation_id, "toolset_id")}.get_instructions'
        operation = {
            'ToolsetGetToolsId': 'get_tools',
            'ToolsetValidateToolArgumentsId': 'validate_args',
            'ToolsetCallToolId': 'call_tool',
        }.get(kind)
        if operation is None:
            raise _unknown(operation_id)
        family = _family(_field(operation_id, 'toolset_kind'))
        return f'{agent}__{family}__{_field(operation_id, "toolset_id")}.{operation}'


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
            streaming = ' (Streaming)' if _field(operation_id, 'streaming') else ''
            return f'Model Request{streaming}: {_field(operation_id, "model_name")}'
        model_tasks = {
            'ModelCancelSuspendedResponseId': 'Cancel Suspended Response',
            'ModelCompactMessagesId': 'Compact Messages',
            'ModelCountTokensId': 'Count Tokens',
        }
        if kind in model_tasks:
            return f'{model_tasks[kind]}: {_field(operation_id, "model_name")}'
        if kind == 'EventStreamHandlerId':
            return 'Handle Stream Event'
        if kind == 'ToolsetGetToolsId':
            mcp = _field(operation_id, 'toolset_kind') == 'mcp'
            return f'{"Get MCP Tools" if mcp else "Discover Tools"}: {_field(operation_id, "toolset_id")}'
        if kind == 'ToolsetGetInstructionsId':
            return f'Get MCP Instructions: {_field(operation_id, "toolset_id")}'
        if kind == 'ToolsetValidateToolArgumentsId':
            return 'Validate Tool Args'
        if kind == 'ToolsetCallToolId':
            return 'Call MCP Tool' if _field(operation_id, 'toolset_kind') == 'mcp' else 'Call Tool'
        raise _unknown(operation_id)
