"""One activation at a time per workflow instance, even after Temporal's deadlock detector gave up on one.

When an activation runs past the deadlock timeout (2 s; a workflow task starved of CPU is enough), the worker fails
the task, raises an interruption in the activation's thread and evicts the workflow. It means to wait for the
interrupted thread before evicting, but what it waits on is the future its own timeout cancelled, so the eviction
starts at once, on a second thread, on the same event loop the first thread may still be running: the interruption
only fails the task it lands in (or waits while the thread is in C code), and the loop carries on. The eviction then
cancels tasks that are running on the other thread, finishes its loop pass while they still exist
(`Eviction processed, but N tasks remain`) and retries for ever, with the loop's state torn between two threads:
the run never ends and its worker slot stays used. The agent run's tasks (pydantic-graph's task group, the
`wrap_run` hand-off) are simply what is alive in a workflow running an agent.

Holding a lock per instance across `activate` makes the eviction (or any later activation) wait for the interrupted
one to leave the loop; it then cancels every task from one thread, as Temporal assumes.

A sandboxed runner stays a `SandboxedWorkflowRunner` (a subclass of it): other plugins and the worker's debug mode
recognise the sandbox with `isinstance` and extend its restrictions with `dataclasses.replace`, which keeps the
subclass. Only another kind of runner is wrapped.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from typing import Any

from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

__all__ = ('SerializedActivationRunner', 'SerializedSandboxedWorkflowRunner', 'serialize_activations')


def serialize_activations(runner: WorkflowRunner) -> WorkflowRunner:
    """`runner`, with one activation at a time per workflow instance (applying it twice changes nothing)."""
    if isinstance(runner, (SerializedSandboxedWorkflowRunner, SerializedActivationRunner)):
        return runner
    if type(runner) is SandboxedWorkflowRunner:
        values = {field.name: getattr(runner, field.name) for field in fields(runner) if field.init}
        return SerializedSandboxedWorkflowRunner(**values)
    # An unsandboxed runner, or a subclass of the sandbox with behaviour of its own: wrapped.
    return SerializedActivationRunner(runner)


@dataclass(frozen=True)
class SerializedSandboxedWorkflowRunner(SandboxedWorkflowRunner):
    """The sandbox, with one activation at a time per workflow instance (see the module docstring)."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _SerializedInstance(super().create_instance(det))


class SerializedActivationRunner(WorkflowRunner):
    """A workflow runner whose instances handle one activation at a time (see the module docstring)."""

    def __init__(self, inner: WorkflowRunner) -> None:
        self.inner = inner

    def prepare_workflow(self, defn: Any) -> None:
        self.inner.prepare_workflow(defn)

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _SerializedInstance(self.inner.create_instance(det))

    def set_worker_level_failure_exception_types(self, types: Any) -> None:
        self.inner.set_worker_level_failure_exception_types(types)

    def __getattr__(self, name: str) -> Any:
        # Anything else a runner has (in this temporalio release or a later one) is the inner runner's.
        return getattr(self.inner, name)


class _SerializedInstance(WorkflowInstance):
    def __init__(self, inner: WorkflowInstance) -> None:
        self.inner = inner
        self._lock = threading.Lock()

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        with self._lock:
            return self.inner.activate(act)

    def get_serialization_context(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.get_serialization_context(*args, **kwargs)

    def get_external_store_context(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.get_external_store_context(*args, **kwargs)

    def get_info(self) -> Any:
        return self.inner.get_info()

    def get_thread_id(self) -> int | None:
        # The thread running the instance's loop: the one the deadlock detector interrupts.
        return self.inner.get_thread_id()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
