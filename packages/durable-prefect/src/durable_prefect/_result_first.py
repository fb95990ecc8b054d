"""A task's result is stored under its cache key before Prefect reports the task `Completed`.

Prefect ends a successful task by setting its `Completed` state (sent to the server as an event, in the background)
and only then, when the task's transaction commits, writing the result under the task's cache key. A process killed
between the two leaves a task run the server shows `Completed` with no result under its key: the rescheduled flow run
finds no cache hit and runs the task again, e.g. requests the model again (the random-kill suite found one: a final
model request run twice, see `docs/kill-tests.md`). So the function of every task a durable agent creates stores its
own result under the transaction's key before it returns, and turns off the transaction's write, which would write
the same record again: a second write truncates the file first, and a kill during it would lose the result of a task
the server already shows `Completed`.

A kill after the result is stored and before the `Completed` state reaches the server leaves a result without its
state: the next attempt is a cache hit, the unit ran once.

The write is left to Prefect when the task's transaction is not the only one that decides (inside a user's
`transaction()`, which commits or rolls back its tasks' results with it), when it writes nothing (no key, results
not persisted), and under `SERIALIZABLE` isolation (the record's lock belongs to the transaction).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

from prefect import Task, task
from prefect.context import TaskRunContext
from prefect.transactions import BaseTransaction, CommitMode, IsolationLevel, get_transaction
from typing_extensions import ParamSpec

from durable_kernel import unit_execution_attempt

from ._unit_context import task_run_context

__all__ = ('agent_task', 'result_first')

P = ParamSpec('P')
R = TypeVar('R')
T = TypeVar('T')


def result_first(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """`fn`, storing its result under the running task's cache key before returning it.

    The wrapper keeps `fn`'s name, signature and source (`functools.wraps`): Prefect binds the task's parameters and
    hashes its source (`TASK_SOURCE`) through it, so cache keys are unchanged.

    Args:
        fn: The async function of a Prefect task.

    Returns:
        The wrapped function.
    """

    @functools.wraps(fn)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        result = await fn(*args, **kwargs)
        await _store(result)
        return result

    return run


def in_unit_context(fn: Callable[[T], Awaitable[R]], context: str | None) -> Callable[[T], Awaitable[R]]:
    """`fn`, run with its input's run context (attribute `context`) and the ambient one refusing `enqueue()`/`cancel()`.

    It also declares the task run's attempt as the unit's execution attempt (`durable_kernel.unit_execution_attempt`).

    Applied here rather than in the task functions: their source is part of every task's cache key (`TASK_SOURCE`),
    so editing them would make the runs in flight at an upgrade repeat their calls. The wrapper keeps `fn`'s source
    (`functools.wraps`), and the guarded context is a copy given to `fn`, after Prefect computed the key.
    """

    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> R:
        # Prefect calls a task's function with its parameters by name (bound through `fn`'s signature).
        (item,) = (*args, *kwargs.values())
        ctx = getattr(item, context) if context is not None else None
        task_ctx = TaskRunContext.get()
        # Which execution of the task this is, for the `origin` of a streamed request's events (pydantic-ai 2.78+):
        # the task functions cannot take it (their source keys the task), the kernel reads it from here.
        execution = task_ctx.task_run.run_count if task_ctx is not None else 1
        with task_run_context(ctx) as guarded, unit_execution_attempt(max(execution, 1)):
            if context is not None:
                item = copy.copy(item)
                setattr(item, context, guarded)
            return await fn(item)

    return run


def recorded_first(
    fn: Callable[[T], Awaitable[R]], recorded: Callable[[T], Awaitable[R | None]]
) -> Callable[[T], Awaitable[R]]:
    """`fn`, unless `recorded(input)` finds a result recorded for the same call elsewhere (then that result).

    Like `in_unit_context`, a wrapper that keeps `fn`'s source, so that the task's cache key is unchanged.
    """

    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> R:
        (item,) = (*args, *kwargs.values())
        found = await recorded(item)
        return found if found is not None else await fn(item)

    return run


def agent_task(
    fn: Callable[[T], Awaitable[R]],
    *,
    context: str | None = None,
    recorded: Callable[[T], Awaitable[R | None]] | None = None,
) -> Task[[T], Awaitable[R]]:
    """The Prefect task of a durable agent's unit: `fn` as a task whose result is stored before it reports `Completed`.

    Every task our agents create is made here, so that none can miss the early write (see the module), and none runs
    user code with a run context that could enqueue messages.

    Args:
        fn: The async function of the task, taking one input.
        context: The attribute of that input holding the run context user code gets, if any.
        recorded: Looks up a result recorded for the same call by other code (pydantic-ai's own `PrefectAgent`),
            returned instead of running `fn`, or `None`.

    Returns:
        The task (its options are set per call with `with_options`).
    """
    body = in_unit_context(fn, context)
    return task(result_first(recorded_first(body, recorded) if recorded is not None else body))


async def _store(result: Any) -> None:
    """Persist `result` as the running task's transaction would on commit, and make the commit not write it again."""
    transaction = get_transaction()
    task_ctx = TaskRunContext.get()
    if transaction is None or task_ctx is None or not _writes_alone(transaction):
        return
    store = transaction.store
    assert store is not None  # checked by `_writes_alone`
    expires_in = task_ctx.task.cache_expiration
    # As Prefect computes it on commit. Its `DateTime` type differs between Prefect versions (pendulum's before 3.5):
    # the record's model validates an aware `datetime` into either.
    expiration: Any = datetime.now(timezone.utc) + expires_in if expires_in is not None else None
    try:
        record = store.create_result_record(result, key=transaction.key, expiration=expiration)
        await store.apersist_result_record(record)
    except Exception:
        # Left to the commit, which fails the same way and deals with it as Prefect does (a result it cannot
        # serialize is logged, not cached, and the run goes on): the task must not fail here.
        return
    transaction.write_on_commit = False


def _writes_alone(transaction: BaseTransaction) -> bool:
    """Whether the transaction will write the task's result by itself when the task returns (see the module)."""
    return bool(
        transaction.store is not None
        and transaction.key
        and transaction.write_on_commit
        and not transaction.is_committed()
        and transaction.get_parent() is None
        and transaction.commit_mode in (CommitMode.LAZY, CommitMode.EAGER)
        and transaction.isolation_level != IsolationLevel.SERIALIZABLE
    )
