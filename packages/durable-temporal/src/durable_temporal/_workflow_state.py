"""State kept per running workflow instance, forgotten with the instance.

Workflow code that the agent runs keeps a little bookkeeping (what model activities were sent, which deps were
sent) that must live exactly as long as the workflow instance: a replay after an eviction builds a new instance and
must rebuild the state from scratch, as the replayed code runs again.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from temporalio import workflow

__all__ = ('PerWorkflow',)

StateT = TypeVar('StateT')

_FALLBACK_SIZE = 1024


class PerWorkflow(Generic[StateT]):
    """A `StateT` for the workflow instance whose code is running, created on first use."""

    def __init__(self, factory: Callable[[], StateT]) -> None:
        self._factory = factory
        self._by_instance: weakref.WeakKeyDictionary[Any, StateT] = weakref.WeakKeyDictionary()
        # For workflow classes that cannot be weakly referenced or hashed (`__slots__`, `__eq__` without `__hash__`):
        # keyed by object id, holding the instance so that its id is not reused while the entry lives.
        self._by_id: OrderedDict[int, tuple[Any, StateT]] = OrderedDict()

    def current(self) -> StateT:
        """The state of the running workflow instance."""
        instance = workflow.instance()
        try:
            state = self._by_instance.get(instance)
            if state is None:
                state = self._by_instance[instance] = self._factory()
            return state
        except TypeError:
            return self._fallback(instance)

    def _fallback(self, instance: Any) -> StateT:
        entry = self._by_id.get(id(instance))
        if entry is not None and entry[0] is instance:
            self._by_id.move_to_end(id(instance))
            return entry[1]
        state = self._factory()
        self._by_id[id(instance)] = (instance, state)
        while len(self._by_id) > _FALLBACK_SIZE:
            self._by_id.popitem(last=False)
        return state
