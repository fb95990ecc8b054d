"""Setting a context variable for the length of a `with` block: the engines' overrides and run scopes."""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from ._compat import Unset, is_set

__all__ = ('scoped_context_value',)

T = TypeVar('T')


@contextmanager
def scoped_context_value(var: ContextVar[T], value: T | Unset) -> Generator[None]:
    """Set `var` to `value` inside the `with` block and restore its previous value after it, even on error.

    The wrapper agents keep what `override()` and a durable run install in context variables (never on the shared
    agent), so concurrent runs and tasks do not see each other's values.

    Args:
        var: The context variable.
        value: Its value inside the block; `pydantic_ai.UNSET` leaves the variable untouched (an `override`
            argument that was not given).

    Yields:
        Nothing; the value applies inside the block.
    """
    if not is_set(value):
        yield
        return
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)
