"""Whether an agent run may be instrumented (emit OpenTelemetry spans), told before the run starts.

An engine that must treat instrumented runs apart (Temporal keeps the spans of replayed workflow code out of traces)
asks this, so that an uninstrumented run pays nothing for it. pydantic-ai instruments a run when any of these holds:

- the agent's `instrument` is set (`agent.instrument = ...`), or, when it is `None`, `Agent.instrument_all(...)` was
  called (the class default, read through `_compat`);
- the agent's model is an `InstrumentedModel` (as `logfire.instrument_pydantic_ai(model)` makes);
- an `Instrumentation` capability is in the agent's capability tree, in an `override(capabilities=...)` in force, or
  among the run's `capabilities=` (or its `spec=`'s: a run given a spec counts as instrumented, unread).

A capability function (`DynamicCapability`) may return an `Instrumentation` only when the run starts: an agent or
run with one counts as instrumented, the safe side (what may be missed costs a duplicate span, what is added costs a
little time).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

from opentelemetry.trace import NoOpTracer
from pydantic_ai.agent import AbstractAgent, Agent, WrapperAgent
from pydantic_ai.capabilities import AbstractCapability, DynamicCapability, Instrumentation, WrapperCapability
from pydantic_ai.models.instrumented import InstrumentedModel
from pydantic_ai.tools import RunContext

from ._compat import (
    FOR_RUN_SEES_RUN_INSTRUMENTATION,
    agent_instrument_default,
    agent_override_capability,
    agent_root_capability,
)

__all__ = ('run_may_be_instrumented',)


def run_may_be_instrumented(
    agent: AbstractAgent[Any, Any],
    run_capabilities: Sequence[Any] | None = None,
    ctx: RunContext[Any] | None = None,
    *,
    run_spec: Any = None,
) -> bool:
    """Whether a run of `agent` may emit spans (see the module docstring); `False` only when it surely does not.

    Args:
        agent: The agent (a wrapper agent is looked through).
        run_capabilities: The run's `capabilities=` (capabilities or capability functions), where known.
        ctx: The run context a capability's `for_run` gets, when the run's `capabilities=` are not known: where
            pydantic-ai sets its tracer from every `Instrumentation` of the run (`FOR_RUN_SEES_RUN_INSTRUMENTATION`,
            2.68+) that tells; elsewhere the run's own capabilities cannot be seen, so the run counts as instrumented.
        run_spec: The run's `spec=`, where known: its capabilities are built in the run, so any spec counts.

    Returns:
        Whether the run may be instrumented.
    """
    if run_spec is not None:
        return True
    if ctx is not None and (not FOR_RUN_SEES_RUN_INSTRUMENTATION or not isinstance(ctx.tracer, NoOpTracer)):
        return True
    inner = agent
    while isinstance(inner, WrapperAgent):
        inner = inner.wrapped
    if isinstance(inner, Agent):
        instrument = inner.instrument
        if instrument if instrument is not None else agent_instrument_default():
            return True
    if isinstance(inner.model, InstrumentedModel):
        return True
    trees: list[AbstractCapability[Any]] = [agent_root_capability(agent)]
    override = agent_override_capability(agent)
    if override is not None:
        trees.append(override)
    for capability in run_capabilities or ():
        if not isinstance(capability, AbstractCapability):
            return True  # A capability function: what it returns is known only in the run.
        trees.append(cast('AbstractCapability[Any]', capability))
    return any(_may_instrument(leaf) for leaf in _leaves(trees))


def _leaves(trees: Iterable[AbstractCapability[Any]]) -> list[AbstractCapability[Any]]:
    leaves: list[AbstractCapability[Any]] = []
    for tree in trees:
        tree.apply(leaves.append)
    return leaves


def _may_instrument(capability: AbstractCapability[Any]) -> bool:
    # A wrapper around one capability is a leaf of the tree: its wrapped capability decides.
    while isinstance(capability, WrapperCapability) and not isinstance(capability, Instrumentation):
        capability = capability.wrapped
    return isinstance(capability, (Instrumentation, DynamicCapability))
