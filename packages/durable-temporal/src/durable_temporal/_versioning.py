"""Behaviours that change the commands a workflow schedules: each behind a `workflow.patched` id, each switchable.

A worker that schedules other commands than the ones recorded cannot replay a history, so every such behaviour is
taken only under a patch marker: a history recorded before it (by an older release, or by the reference
`TemporalAgent`) replays as recorded. The marker only protects the new code against old histories, though. A history
that carries it replays only on a worker that knows it: once a new release has recorded markers, rolling back to the
previous release (or to the reference) fails on those workflows unless they are drained first.

So every marker also has a switch (`PydanticAIPlugin(patches={id: False})`). Switched off, a new execution takes the
previous behaviour and records no marker, exactly as the previous release did: a fleet deploys the release with its
switches off (every worker can now replay the new behaviour, and rollback stays possible), then turns them on.
Switched off must still replay a history that carries the marker (recorded while the switch was on, or by another
worker), so while replaying `workflow.patched` is asked as usual: it answers from the history. The first answer
for an id holds for the rest of the workflow run (like `workflow.patched`'s own memo), so a workflow that a worker
with the switch on started keeps the new behaviour when a worker with the switch off continues it.

The schedule on which each marker becomes default, is retired with `workflow.deprecate_patch` and removed is in the
Temporal guide ("Versioning policy").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai.exceptions import UserError
from temporalio import workflow
from temporalio.worker import (
    ExecuteWorkflowInput,
    HandleSignalInput,
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from ._workflow_state import PerWorkflow

__all__ = (
    'ASK_OPERATION_PATCH',
    'DURABLE_COUNT_TOKENS_PATCH',
    'EVENT_BATCHES_PATCH',
    'ORDERED_TOOL_EVENTS_PATCH',
    'PATCH_DEFAULTS',
    'PER_RUN_LISTING_PATCH',
    'PatchSwitchInterceptor',
    'patched',
    'recorded',
    'patch_switches',
)

ORDERED_TOOL_EVENTS_PATCH = 'durable_temporal.parallel_ordered_events'
"""The `workflow.patched` id under which parallel tool calls report their events to the handler in call order.

It is only consulted (and recorded) for a model response with several tool calls in a run with an event stream
handler: the one case where pydantic-ai's `'parallel'` mode (each result's handler activity scheduled as its tool
finishes) and `'parallel_ordered_events'` schedule different commands. Histories without the marker (older ones,
and the reference `TemporalAgent`'s) keep replaying in `'parallel'` mode.
"""

EVENT_BATCHES_PATCH = 'durable_temporal.event_batches'
"""The `workflow.patched` id under which the events of a run reach the handler activity in batches.

The events the agent yields together (the tool-call events of a model response, the results of calls that finished
together) go to one activity, started while the tool calls run, instead of one activity per event before the next
event is even produced. Histories without the marker (older ones, and the reference `TemporalAgent`'s) keep
replaying with one activity per event.
"""

PER_RUN_LISTING_PATCH = 'durable_temporal.dynamic_toolset_per_run'
"""The `workflow.patched` id under which a `per_run_step=False` dynamic toolset is listed once per run.

Consulted (and recorded) only at the second listing of such a toolset in a run: histories without the marker (the
reference's, which lists it at every step) keep replaying as recorded.
"""

DURABLE_COUNT_TOKENS_PATCH = 'pydantic_ai:durable_count_tokens'
"""The `workflow.patched` id under which a count of a request's tokens ahead of it runs in its own activity.

pydantic-ai 2.78's own id, asked at the same point (each count, in both forms), so that histories move between the two
both ways. Histories without it (pydantic-ai's before 2.78, and its wrappers' in 2.78; our capability form's before
this marker) counted in workflow code, and replay so. Asked with `workflow.patched` directly, not through a switch (and not in `PATCH_DEFAULTS`): it is pydantic-ai's
marker, as `pydantic_ai:stable_default_run_id` is, recorded wherever pydantic-ai 2.78 records it. A workflow that
recorded it does not replay on a release of ours without it: drain those before rolling back.
"""

ASK_OPERATION_PATCH = 'pydantic_ai:external_event_ask_as_capability_operation'
"""The `workflow.patched` id under which a wait's `ask` that is a capability's durable operation runs in its activity.

pydantic-ai 2.78's own id, asked at the same point: a wait for an external event whose `ask` is a capability's
`@durable_operation` (the handler of `HandleDeferredToolCalls(id=...)`) runs it as that operation's activity,
`agent__{name}__capability__{id}__ask`, instead of in the local activity `external_event_ask`. Asked only for such an
`ask`, with `workflow.patched` directly (pydantic-ai's marker, as `DURABLE_COUNT_TOKENS_PATCH`). Histories without it
(ours before this marker, pydantic-ai's before 2.78's) asked in the local activity, and replay so. `TemporalAgent` asks
it only where it runs capability operations in activities (`CAPABILITY_OPERATIONS_PATCH`). A workflow that recorded it
does not replay on a release of ours without it: drain those before rolling back.
"""

CAPABILITY_OPERATIONS_PATCH = 'durable_temporal.capability_operations'
"""The `workflow.patched` id under which `TemporalAgent` runs a capability's durable operation in its own activity.

pydantic-ai 2.68+'s `@durable_operation`: consulted at the first such call of a workflow run. Histories without the
marker (ours before, and pydantic-ai's own `TemporalAgent`, which runs them in workflow code) keep replaying as they
ran. Off by default (the versioning policy of new markers): `PydanticAIPlugin(patches={CAPABILITY_OPERATIONS_PATCH:
True})` turns it on once every worker runs a release that has it. `TemporalDurability` asks no marker: it schedules
the activity as pydantic-ai 2.78's capability does.
"""

PATCH_DEFAULTS: Mapping[str, bool] = {
    CAPABILITY_OPERATIONS_PATCH: False,
    EVENT_BATCHES_PATCH: True,
    ORDERED_TOOL_EVENTS_PATCH: True,
    PER_RUN_LISTING_PATCH: True,
}
"""Every patch id of this package, and whether new executions take its behaviour when the plugin does not say."""


@dataclass
class _PatchState:
    switches: Mapping[str, bool] = field(default_factory=lambda: PATCH_DEFAULTS)
    decided: dict[str, bool] = field(default_factory=dict[str, bool])


_states: PerWorkflow[_PatchState] = PerWorkflow(_PatchState)


def patched(patch_id: str) -> bool:
    """Whether the running workflow takes the behaviour of `patch_id` (one of `PATCH_DEFAULTS`).

    Switched on, this is `workflow.patched(patch_id)`. Switched off, the same while replaying (the history decides);
    otherwise `False`, and no marker is recorded. The first answer holds for the rest of the workflow run.
    """
    state = _states.current()
    decided = state.decided.get(patch_id)
    if decided is None:
        if state.switches.get(patch_id, PATCH_DEFAULTS[patch_id]) or workflow.unsafe.is_replaying():
            decided = workflow.patched(patch_id)
        else:
            decided = False
        state.decided[patch_id] = decided
    return decided


def recorded(patch_id: str) -> bool:
    """Whether the workflow run being replayed took the behaviour of `patch_id`; in a new execution, `False`.

    Never records a marker. For `TemporalDurability`, which schedules as pydantic-ai 2.x's capability does (none of
    these behaviours), but must finish a workflow that our `TemporalAgent` started: the wrapper's markers are then in
    the history, at the points where the capability asks. The first answer holds for the rest of the workflow run.
    """
    state = _states.current()
    decided = state.decided.get(patch_id)
    if decided is None:
        decided = workflow.patched(patch_id) if workflow.unsafe.is_replaying() else False
        state.decided[patch_id] = decided
    return decided


def patch_switches(patches: Mapping[str, bool] | None) -> dict[str, bool]:
    """`PATCH_DEFAULTS` with `patches` applied.

    Raises:
        UserError: `patches` names an id this package does not have.
    """
    unknown = sorted(set(patches or {}) - set(PATCH_DEFAULTS))
    if unknown:
        raise UserError(
            f'Unknown patch id {unknown[0]!r} in `PydanticAIPlugin(patches=...)`: the ids of durable-temporal are '
            f'{", ".join(repr(patch_id) for patch_id in PATCH_DEFAULTS)} (see "Versioning policy" in the Temporal '
            'guide). Remove it, or upgrade durable-temporal if it names a newer behaviour.'
        )
    return {**PATCH_DEFAULTS, **(patches or {})}


class PatchSwitchInterceptor(Interceptor):
    """Worker interceptor that gives each workflow instance the plugin's patch switches."""

    def __init__(self, switches: Mapping[str, bool]) -> None:
        self.switches = dict(switches)
        configured = self.switches

        class _WorkflowInbound(WorkflowInboundInterceptor):
            # Every entry into workflow code sets them: a signal or update handler may run an agent before the run
            # method has started. Setting them again is harmless (the same mapping).
            def _set(self) -> None:
                _states.current().switches = configured

            async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
                self._set()
                return await super().execute_workflow(input)

            async def handle_signal(self, input: HandleSignalInput) -> None:
                self._set()
                await super().handle_signal(input)

            async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
                self._set()
                return await super().handle_update_handler(input)

        self._workflow_interceptor_class = _WorkflowInbound

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        """Set the switches in each workflow instance."""
        return self._workflow_interceptor_class
