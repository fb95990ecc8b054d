"""The Prefect task of a capability's durable operation (pydantic-ai 2.68+'s `@durable_operation`).

A new task function beside the pinned ones (whose sources key their tasks): `Capability: {id}.{operation}`, pydantic-ai
2.78's name, keyed by the operation, its arguments (as JSON by their annotations) and the run context, as the other
tasks of a run are, so that a retried or resumed flow run takes the recorded outcome.
"""

from __future__ import annotations

from typing import Any

from pydantic_ai.tools import RunContext

from durable_kernel import (
    CapabilityOperation,
    CapabilityOperationOutcome,
    DurabilityCapability,
    operation_unit_models,
    prefect_capability_operation_task_name,
    run_operation_in_unit,
)

from ._cache_policy import KeyedTaskInput
from ._result_first import agent_task
from ._task_config import TaskConfig, merge_task_config

__all__ = ('run_operation_task',)


class _OperationCall(KeyedTaskInput):
    """One call of a durable operation: keyed by capability id, operation, arguments and run context."""

    __slots__ = ('arguments', 'operation', 'run_context')

    def __init__(self, operation: CapabilityOperation, arguments: dict[str, Any], run_context: RunContext[Any]) -> None:
        self.operation = operation
        self.arguments = arguments
        self.run_context = run_context

    def cache_material(self) -> Any:
        return {
            'capability': self.operation.capability_id,
            'operation': self.operation.name,
            'arguments': self.arguments,
            'run_context': self.run_context,
        }


async def _run_operation(call: _OperationCall) -> CapabilityOperationOutcome:
    return await run_operation_in_unit(call.operation, call.run_context, call.arguments)


_OPERATION_TASK = agent_task(_run_operation, context='run_context')


async def run_operation_task(
    operation: CapabilityOperation,
    ctx: RunContext[Any],
    arguments: dict[str, Any],
    *,
    task_config: TaskConfig | None = None,
    models: DurabilityCapability[Any] | None = None,
) -> CapabilityOperationOutcome:
    """Run a durable operation in its `Capability: {id}.{operation}` task (from flow code).

    Args:
        operation: The operation.
        ctx: The run context of the call.
        arguments: Its arguments as `wire_arguments` made them.
        task_config: The task's config.
        models: The durability capability whose models an operation on a request context resolves by key.
    """
    name = prefect_capability_operation_task_name(operation.capability_id, operation.name)
    task = _OPERATION_TASK.with_options(name=name, **merge_task_config(task_config))
    if models is None:
        return await task(_OperationCall(operation, arguments, ctx))
    # Ambient, not an argument: the task function's source keys its cache (see `durable_kernel.operation_unit_models`).
    with operation_unit_models(models.model_for_operation, models.model_key):
        return await task(_OperationCall(operation, arguments, ctx))
