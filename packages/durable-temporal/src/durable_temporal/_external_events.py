"""Durable waits for external events (pydantic-ai 2.78's `wait_for_external_event`) in a Temporal workflow.

A wait draws a key from the workflow's replay-safe random source, hands the token (`{workflow id}:{key}`) to `ask` in
the local activity `agent__{name}__external_event_ask`, whose result the history records, and, unless `ask` answered,
waits with `workflow.wait_condition` for the signal `pydantic_ai__external_event` that `resolve_external_event` or
`fail_external_event` sends from anywhere. A restarted worker replays the recorded answer and the signal: `ask` is not
called again and the wait does not start over.

Why a local activity: `ask` is a closure over the live run (the run context, the pending tool calls), which cannot
cross a process boundary. Temporal runs a local activity in the worker process whose workflow task scheduled it, where
the wait left the callback (`_pending_asks`, in this module, which the sandbox passes through).

One exception, pydantic-ai 2.78's: an `ask` that is a capability's durable operation (the handler of
`HandleDeferredToolCalls(id=...)`) is data, not a closure, so it runs as that operation's activity,
`agent__{name}__capability__{id}__ask`, on the worker's copy of the capability, under 2.78's patch marker
(`ASK_OPERATION_PATCH`); histories without the marker asked in the local activity and replay so.

The commands (the key drawn, the local activity, the timer of a timeout), the activity's name and arguments, and the
signal's name and fields are pydantic-ai 2.78's own: a workflow waiting under its `TemporalDurability` finishes on ours
and the reverse, and either's resolver ends either's wait.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import JsonValue
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.workflow import ActivityConfig

from durable_kernel import (
    AskForEvent,
    external_event_error,
    external_event_payload,
    external_event_token,
    operation_ask_dispatch,
    parse_external_event_token,
    temporal_activity_name_with_prefix,
)

from ._config import execute_unit
from ._versioning import ASK_OPERATION_PATCH
from ._workflow_state import PerWorkflow

__all__ = (
    'ExternalEventSignal',
    'TemporalEventWait',
    'external_event_ask_activity',
    'fail_external_event',
    'resolve_external_event',
)

SIGNAL_NAME = 'pydantic_ai__external_event'
"""The signal that ends a wait: pydantic-ai 2.78's name, so its resolver and ours reach either's workflows."""

_pending_asks: dict[str, AskForEvent] = {}
"""The `ask` of each wait whose local activity is scheduled on this worker, by `{workflow run id}:{event key}`."""

_LOCAL_KEYS = frozenset(
    {
        'start_to_close_timeout',
        'schedule_to_close_timeout',
        'schedule_to_start_timeout',
        'retry_policy',
        'cancellation_type',
    }
)

_WAIT_CONDITION_HAS_SUMMARY = 'timeout_summary' in inspect.signature(workflow.wait_condition).parameters


@dataclass
class ExternalEventSignal:
    """The signal's argument (its field names are wire format, pydantic-ai 2.78's): a payload, or a failure's reason."""

    event_key: str
    payload: JsonValue = None
    error: str | None = None


@dataclass
class _Inbox:
    """The outcomes signalled to one workflow run, kept only for the waits in progress."""

    waiting: set[str] = field(default_factory=set[str])
    outcomes: dict[str, ExternalEventSignal] = field(default_factory=dict[str, ExternalEventSignal])
    registered: bool = False

    def receive(self, signal: ExternalEventSignal) -> None:
        # The first outcome wins, as in process; one for a wait that ended (or never was) changes nothing.
        if signal.event_key in self.waiting:
            self.outcomes.setdefault(signal.event_key, signal)


_inboxes: PerWorkflow[_Inbox] = PerWorkflow(_Inbox)


def _inbox() -> _Inbox:
    """The running workflow's inbox, its signal handler registered on the first wait.

    Registered before `ask` hands the token out; Temporal delivers a signal that arrived before its handler was
    registered once it is, so none is missed.
    """
    inbox = _inboxes.current()
    if not inbox.registered:

        def handle(signal: ExternalEventSignal) -> None:
            inbox.receive(signal)

        workflow.set_signal_handler(SIGNAL_NAME, handle)  # pyright: ignore[reportUnknownMemberType]
        inbox.registered = True
    return inbox


def external_event_ask_activity(prefix: str) -> Callable[..., Any]:
    """The local activity `{prefix}__external_event_ask` that calls a wait's `ask` with the token."""

    async def external_event_ask(pending_key: str, token: str) -> JsonValue:
        ask = _pending_asks.get(pending_key)
        if ask is None:  # pragma: no cover - only when the sandbox imported this module again
            raise ApplicationError(
                'The wait for an external event that scheduled this activity is not known to this worker: its '
                'workflow sandbox must pass `durable_temporal` through. Configure the worker with `PydanticAIPlugin` '
                'or `AgentPlugin`, which do.',
                non_retryable=True,
            )
        return await ask(token)

    return activity.defn(name=temporal_activity_name_with_prefix(prefix, 'external_event_ask'))(external_event_ask)


@dataclass
class TemporalEventWait:
    """The durable wait of one agent's runs (see the module docstring); installed for each run in a workflow."""

    ask_activity: Callable[..., Any]
    activity_config: ActivityConfig
    """The agent's base activity config: the local activity takes its timeouts, retry policy and cancellation type."""
    operations_in_activities: Callable[[], bool] = lambda: True
    """Whether the run's capability operations run in their activities now (the capability form: always; the wrapper
    form: under its switch), so an `ask` that is one can run in its own (else it would run in workflow code)."""

    async def __call__(self, name: str, *, ask: AskForEvent, timeout: timedelta | None) -> JsonValue:
        """Wait for an external event in the running workflow (see `durable_kernel.ExternalEventWait`)."""
        info = workflow.info()
        event_key = workflow.uuid4().hex
        token = external_event_token(info.workflow_id, event_key)
        pending_key = f'{info.run_id}:{event_key}'
        inbox = _inbox()
        inbox.waiting.add(event_key)
        try:
            answer = await self._ask(ask, name=name, token=token, pending_key=pending_key)
            if answer is not None:
                return answer
            summary: dict[str, Any] = {'timeout_summary': name} if _WAIT_CONDITION_HAS_SUMMARY else {}
            try:
                await workflow.wait_condition(lambda: event_key in inbox.outcomes, timeout=timeout, **summary)
            except asyncio.TimeoutError:  # `TimeoutError` itself from Python 3.11 on
                raise external_event_error(f'No resolution arrived within {timeout}.') from None
            outcome = inbox.outcomes[event_key]
        finally:
            inbox.waiting.discard(event_key)
            inbox.outcomes.pop(event_key, None)
        if outcome.error is not None:
            raise external_event_error(outcome.error)
        return outcome.payload

    async def _ask(self, ask: AskForEvent, *, name: str, token: str, pending_key: str) -> JsonValue:
        """Call `ask` with the token in the activity whose result the history records (see the module docstring)."""
        # The marker is asked only for an operation's `ask`, as pydantic-ai 2.78 asks it: the same commands either way.
        dispatch = operation_ask_dispatch(ask)
        if dispatch is not None and self.operations_in_activities() and workflow.patched(ASK_OPERATION_PATCH):
            # From workflow code, outside any unit: the run's dispatcher schedules the operation's activity.
            return await dispatch(token)
        _pending_asks[pending_key] = ask
        try:
            # The settings a local activity has (a `task_queue` of the base config does not apply to it).
            config: dict[str, Any] = {k: v for k, v in self.activity_config.items() if k in _LOCAL_KEYS}
            config['summary'] = f'ask: {name}'
            return await execute_unit(self.ask_activity, [pending_key, token], config, local=True)
        finally:
            _pending_asks.pop(pending_key, None)


async def resolve_external_event(client: Client, token: str, payload: object) -> None:
    """End a wait for an external event in a Temporal workflow with `payload`.

    The token is the one `pydantic_ai.external_events.wait_for_external_event` handed to its `ask` inside a workflow
    running an agent with [`TemporalDurability`][durable_temporal.TemporalDurability] or
    [`TemporalAgent`][durable_temporal.TemporalAgent] (pydantic-ai 2.78+), for example the handler of pydantic-ai's
    `HandleDeferredToolCalls` that takes a token. It names the workflow, which this signals. Call it from anywhere
    with a client of the workflow's namespace, such as the endpoint your approval UI posts to. Tokens handed out by
    pydantic-ai's own `TemporalDurability` are resolved the same way.

    The wait returns the payload's JSON form, as in process. Once the wait ended (resolved, failed or timed out), the
    signal changes nothing.

    Args:
        client: A Temporal client of the namespace the workflow runs in.
        token: The resume token `ask` received.
        payload: The answer, such as the JSON form of `DeferredToolResults` for `HandleDeferredToolCalls`.

    Raises:
        UserError: The token was not handed out by a wait in a Temporal workflow, or `payload` cannot be converted to
            JSON.
        temporalio.service.RPCError: The workflow is not running (for example, it already completed).
    """
    workflow_id, event_key = parse_external_event_token(token, engine='Temporal')
    signal = ExternalEventSignal(event_key=event_key, payload=external_event_payload(payload))
    await client.get_workflow_handle(workflow_id).signal(SIGNAL_NAME, signal)


async def fail_external_event(client: Client, token: str, reason: str) -> None:
    """End a wait for an external event in a Temporal workflow without a payload.

    The wait raises pydantic-ai's `ExternalEventError` with `reason`, as on a timeout; `HandleDeferredToolCalls` then
    denies the pending calls with `reason` in its message to the model.

    Args:
        client: A Temporal client of the namespace the workflow runs in.
        token: The resume token `ask` received.
        reason: Why no answer is coming.

    Raises:
        UserError: The token was not handed out by a wait in a Temporal workflow.
        temporalio.service.RPCError: The workflow is not running (for example, it already completed).
    """
    workflow_id, event_key = parse_external_event_token(token, engine='Temporal')
    signal = ExternalEventSignal(event_key=event_key, error=reason)
    await client.get_workflow_handle(workflow_id).signal(SIGNAL_NAME, signal)
