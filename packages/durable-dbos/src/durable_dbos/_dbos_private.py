"""The private DBOS APIs this package reaches for, in one place (tested on dbos 3.4).

DBOS offers no public way to (1) run a function once `DBOS.launch()` has started, or to ask whether it has, (2) read
the step id that the next step of the running workflow will take without drawing it (`DBOS.reserve_step` draws it, and
an id drawn but not used shifts every later step, which recovery then refuses), nor (3) tell one execution of a
workflow from another. We need (1) to warn at launch about pending workflows that DBOS will not recover and to refuse
registering workflows after launch, (2) to decide whether a tool call of a recovered workflow was recorded as a step
(see `_step_layout.py`), and (3) to count a tool call's child workflows per execution (see `_child_workflows.py`). If a
DBOS release moves them, this file is the one to change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import dbos._dbos as dbos_module
from dbos._context import get_local_dbos_context
from dbos._dbos import _get_or_create_dbos_registry  # pyright: ignore[reportPrivateUsage]

__all__ = ('dbos_launched', 'next_step_id', 'run_after_launch', 'workflow_context')


def run_after_launch(function: Callable[..., Any], *args: Any) -> None:
    """Run `function(*args)` on a DBOS background thread once DBOS has launched (at once if it already has).

    DBOS starts its registered pollers right after launch and joins their threads on `DBOS.destroy()`.
    """
    registry = _get_or_create_dbos_registry()
    current = dbos_module._dbos_global_instance  # pyright: ignore[reportPrivateUsage]
    if registry.dbos is not None and registry.dbos is not current:
        # The registry outlives a destroyed DBOS (a process that launches DBOS again, as tests do) and still points at
        # it, so `register_poller` would run the function at once, against no DBOS: keep it for the next launch.
        registry.pollers.append((threading.Event(), function, args, {}))
        return
    registry.register_poller(threading.Event(), function, *args)


def dbos_launched() -> bool:
    """Whether DBOS has launched in this process (workflows registered from now on are not recovered at launch)."""
    current = dbos_module._dbos_global_instance  # pyright: ignore[reportPrivateUsage]
    return current is not None and bool(getattr(current, '_launched', False))


def next_step_id() -> int | None:
    """The id the next step of the running workflow will take, or `None` outside workflow code."""
    context = get_local_dbos_context()
    if context is None or not context.is_workflow():
        return None
    # DBOS draws step ids by incrementing `function_id` (`DBOSContext.snapshot_step_ctx`).
    return context.function_id + 1


def workflow_context() -> Any:
    """The running workflow's DBOS context object (one per workflow execution; weakly referenceable), or `None`.

    A key for what one execution of a workflow must remember and a recovery must not (see `_child_workflows.py`).
    """
    return get_local_dbos_context()
