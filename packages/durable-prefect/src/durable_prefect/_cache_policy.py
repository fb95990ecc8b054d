"""Cache keys by value: how a retried or resumed flow run finds the model and tool tasks it already completed.

Prefect resumes by cache key, not by position in a log, so the key must be the same for the same work on a
retry (no timestamps, no per-attempt ids) and different for different work (prompt, deps, metadata, message history,
model, tool arguments all count; a live object in them counts by its identity). The rules are in `_canonical.py`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from prefect.cache_policies import TASK_SOURCE, CachePolicy
from prefect.context import FlowRunContext, TaskRunContext

from ._canonical import Canonicalizer, KeyedTaskInput, canonical_value
from ._key_text import current_message_key_cache, key_text

__all__ = (
    'DEFAULT_CACHE_POLICY',
    'AgentRunScope',
    'InputsByValue',
    'KeyedTaskInput',
    'canonical_value',
    'value_key',
)


def value_key(value: Any) -> str:
    """A stable hash of a value, by [`canonical_value`][durable_prefect.canonical_value].

    Inside an agent run, each message is serialized once for all the keys that hold it (`_key_text.py`) and each key
    hashes only what the run's earlier keys did not (`_key_digest.py`); the key is the same as hashing everything
    afresh.

    Args:
        value: Any value.

    Returns:
        A hex digest.
    """
    messages = current_message_key_cache()
    data = Canonicalizer(messages).visit(value, 0)
    if messages is not None:
        return messages.digests.digest(data)
    return hashlib.sha256(key_text(data).encode()).hexdigest()


@dataclass
class InputsByValue(CachePolicy):
    """Cache key part: the task's arguments, by value (see [`canonical_value`][durable_prefect.canonical_value])."""

    def compute_key(
        self,
        task_ctx: TaskRunContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        """Hash the task's arguments by value.

        Args:
            task_ctx: The task run context.
            inputs: The task's arguments.
            flow_parameters: The flow's parameters (not used).
            **kwargs: Other arguments Prefect may pass.

        Returns:
            The key, or `None` for a task without arguments.
        """
        if not inputs:
            return None
        return value_key(inputs)


@dataclass
class AgentRunScope(CachePolicy):
    """Cache key part: which agent run this is, stable across retries and resumption of that run.

    Inside an agent's own flow (a subflow of the caller's flow), the run is identified by the caller's task run
    that tracks the subflow: when the caller's flow is retried, Prefect creates a fresh subflow run but keeps
    that tracking task run, so completed model and tool tasks are found again. A top-level flow run (or a
    resumed one) keeps its flow run id.
    """

    def compute_key(
        self,
        task_ctx: TaskRunContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        """The agent run's stable identity.

        Args:
            task_ctx: The task run context.
            inputs: The task's arguments (not used).
            flow_parameters: The flow's parameters (not used).
            **kwargs: Other arguments Prefect may pass.

        Returns:
            The key, or `None` outside any task run.
        """
        if not task_ctx:
            return None
        flow_run_id = task_ctx.task_run.flow_run_id
        flow_ctx = FlowRunContext.get()
        flow_run = flow_ctx.flow_run if flow_ctx is not None else None
        if flow_run is not None and flow_run.id == flow_run_id and flow_run.parent_task_run_id is not None:
            return f'subflow:{flow_run.parent_task_run_id}'
        return f'flow:{flow_run_id or task_ctx.task_run.id}'


DEFAULT_CACHE_POLICY: CachePolicy = InputsByValue() + TASK_SOURCE + AgentRunScope()
"""The default cache policy of every task a durable agent creates: arguments by value + task source + agent run."""
