"""Tokens that tell live objects apart in cache keys: unique within this process, never reused, never shared.

A client, a session or a lock holds no value that identifies the work (its state changes as it is used), yet two of
them are different inputs: a client for one tenant must never be served the results of another tenant's client. Such
an object is keyed by a token of its identity. The token is made of a random id of this process and a counter, so:

- the same object gets the same token for as long as it lives (a flow run retried in the same process finds its
  completed tasks again);
- a token is never given to another object, even one that reuses a dead object's memory address (`id()` is reused,
  the counter is not);
- another process (a crashed flow run re-run elsewhere) gives other tokens, so the tasks whose inputs hold such an
  object run again there: that is the price of never confusing two live objects.

An object that cannot be weakly referenced cannot be followed through its life without keeping it alive forever;
it gets a fresh token every time, which makes the tasks that receive it run every time.
"""

from __future__ import annotations

import itertools
import threading
import uuid
import weakref
from typing import Any

__all__ = ('instance_token', 'single_use_token')

_PROCESS = uuid.uuid4().hex
"""A random id of this process: tokens from two processes never meet."""

_counter = itertools.count(1)
_lock = threading.RLock()  # re-entrant: a weak reference callback can fire while the lock is held
_tokens: dict[int, tuple[weakref.ref[Any], str]] = {}
"""`id(object)` -> (weak reference to the object, its token); an entry leaves when its object dies."""


def _forget(address: int, ref: weakref.ref[Any]) -> None:
    with _lock:
        entry = _tokens.get(address)
        # The address may already belong to a newer object with its own entry: only the dead object's entry goes.
        if entry is not None and entry[0] is ref:
            del _tokens[address]


def instance_token(value: object) -> str:
    """The token of a live object: the same for as long as it lives in this process, never given to another.

    Args:
        value: Any object.

    Returns:
        A token, or a single-use one (see [`single_use_token`][]) for an object that cannot be weakly referenced.
    """
    address = id(value)
    with _lock:
        entry = _tokens.get(address)
        if entry is not None and entry[0]() is value:
            return entry[1]
        try:
            ref = weakref.ref(value, lambda dead: _forget(address, dead))
        except TypeError:
            return single_use_token()
        token = f'{_PROCESS}:{next(_counter)}'
        _tokens[address] = (ref, token)
        return token


def single_use_token() -> str:
    """A token no other call returns: the key it enters matches no earlier task, so that task runs every time."""
    return f'{_PROCESS}:once:{next(_counter)}'
