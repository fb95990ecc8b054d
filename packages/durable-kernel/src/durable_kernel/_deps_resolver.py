"""Deps that cross a durable boundary as a small reference and are rebuilt, live, on the other side.

An engine stores what crosses its boundaries: Temporal records activity inputs in the workflow history, DBOS pickles
workflow inputs into its system database, Prefect hashes task inputs into cache keys. `deps` usually hold exactly what
must not be stored there: API clients (which cannot be serialized) and the credentials they were built with (which
can, and then sit in plain text in the engine's storage for as long as it keeps runs). A
[`DepsResolver`][durable_kernel.DepsResolver] registered with the durable agent makes the engine store a reference
chosen by the user (a tenant id, the name of a secret) instead, and rebuilds the live deps from it wherever the agent
runs: in workflow code, in every activity or step, and again after a crash.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, get_type_hints

from pydantic_ai.exceptions import UserError
from typing_extensions import TypeVar

__all__ = ('DepsResolver', 'reference_deps', 'resolve_deps')

DepsT = TypeVar('DepsT', default=Any)
ReferenceT = TypeVar('ReferenceT', default=Any)


def _first_parameter_type(func: Callable[..., Any]) -> Any:
    """The annotation of `func`'s first parameter, or `Any` when it has none (a lambda) or it cannot be resolved."""
    try:
        parameters = list(inspect.signature(func).parameters.values())
        hints = get_type_hints(func)
    except (TypeError, ValueError, NameError):
        return Any
    if not parameters:
        return Any
    return hints.get(parameters[0].name, Any)


@dataclass(frozen=True)
class DepsResolver(Generic[DepsT, ReferenceT]):
    """Turns live `deps` into a small serializable reference for the engine to store, and the reference back.

    Pass one to the durable agent (`TemporalAgent`, `DBOSAgent`, `PrefectAgent`: `deps_resolver=`). Runs still take
    the live deps (`agent.run(..., deps=live)`); what crosses every durable boundary, and so what the engine stores,
    is `reference(live)`, and the code on the other side (an activity, a step, a recovered workflow) sees
    `resolve(reference)`. Keep credentials and clients out of the reference: resolve them from where they live on the
    worker (its environment, a secret store, a connection pool).

    `resolve` runs wherever the agent needs the deps, possibly many times per run (on Temporal once per activity and
    in workflow code, where it must not do network I/O): make it cheap, e.g. by caching clients per reference.
    `None` deps (a run without deps) cross as `None` and are not passed to either function.

    Example:
        ```python
        resolver = DepsResolver(
            reference=lambda deps: deps.tenant_id,
            resolve=lambda tenant_id: Deps(tenant_id, client=client_for(tenant_id)),
        )
        ```
    """

    reference: Callable[[DepsT], ReferenceT]
    """Live deps to the reference the engine stores (plain data: a string, numbers, a dataclass or pydantic model)."""

    resolve: Callable[[ReferenceT], DepsT]
    """The reference back to live deps, on whichever process runs the agent's code."""

    reference_type: Any = field(default=None)
    """The type engines that validate inputs (Temporal) decode the reference as; by default the annotation of
    `resolve`'s parameter, or `Any` (JSON data) when it has none."""

    def wire_type(self) -> Any:
        """The type the reference is decoded as: `reference_type`, else `resolve`'s parameter annotation, else `Any`."""
        if self.reference_type is not None:
            return self.reference_type
        return _first_parameter_type(self.resolve)


def reference_deps(resolver: DepsResolver[Any, Any] | None, deps: Any) -> Any:
    """What crosses a durable boundary in place of `deps`: the resolver's reference, or `deps` when there is none.

    Raises:
        UserError: The resolver's `reference` failed (it says which deps, and what to check).
    """
    if resolver is None or deps is None:
        return deps
    try:
        return resolver.reference(deps)
    except Exception as error:
        raise UserError(
            f'`DepsResolver.reference` failed on the deps of type {type(deps).__name__}: {error!r}. The run must be '
            'given the live deps (`run(..., deps=live)`), which the resolver turns into the reference that the '
            'engine stores.'
        ) from error


def resolve_deps(resolver: DepsResolver[Any, Any] | None, value: Any) -> Any:
    """The live deps for what crossed a durable boundary: the resolver's `resolve(value)`, or `value` unchanged."""
    if resolver is None or value is None:
        return value
    return resolver.resolve(value)
