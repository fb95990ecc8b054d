"""The deps of the durable run in progress as Prefect's cache keys should see them: the reference, when resolved.

Prefect finds completed tasks again by a key over their inputs, run context and deps included. With a
[`DepsResolver`][durable_kernel.DepsResolver] the live deps hold clients and credentials: keyed by value, a rotated
credential or a client's changing state would change the key of the same work (a resumed run repeats it), and the
credential would enter the hashed material. The reference is what identifies the work.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from durable_kernel import DepsResolver, reference_deps

__all__ = ('deps_for_cache_key', 'run_deps_resolver')

run_deps_resolver: ContextVar[DepsResolver[Any, Any] | None] = ContextVar('durable_prefect_deps_resolver', default=None)
"""The resolver of the agent whose durable model and toolsets are installed in this context, if it has one."""


def deps_for_cache_key(deps: Any) -> Any:
    """What a task's cache key should hash for `deps`: the current resolver's reference, else `deps` itself."""
    return reference_deps(run_deps_resolver.get(), deps)
