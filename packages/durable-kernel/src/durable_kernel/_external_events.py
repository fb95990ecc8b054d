"""Waits for external events (pydantic-ai 2.78's `wait_for_external_event`) inside our durable runs.

A run hands a resume token to `ask` and, unless `ask` answered, waits until code elsewhere resolves the token. A wait
in process would be neither recorded nor kept across a restart, so each durable run installs its engine's wait
(`ExternalEventWait`) or, where the engine records none, a refusal (`external_events_in_durable_run`).

Engines whose events are addressed by name (Temporal signals, DBOS messages) encode the execution's id and a key of the
wait in the token: the rules for that token, and for the payload's JSON form, are the same on every engine and live
here. The token's shape is pydantic-ai 2.78's own (`{execution id}:{32 hex digits}`), so a token handed out by its
`TemporalDurability` and one handed out by ours are resolved the same way.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Generator
from contextlib import contextmanager
from datetime import timedelta
from typing import Protocol

from pydantic import JsonValue
from pydantic_ai.exceptions import UserError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from ._compat import HAS_EXTERNAL_EVENTS, external_event_error, operation_ask_dispatch, waiting_for_external_events
from ._unit_context import external_events_refused

__all__ = (
    'HAS_EXTERNAL_EVENTS',
    'AskForEvent',
    'ExternalEventWait',
    'external_event_error',
    'external_event_payload',
    'external_event_token',
    'external_events_in_durable_run',
    'operation_ask_dispatch',
    'parse_external_event_token',
)

AskForEvent = Callable[[str], Awaitable[JsonValue]]
"""The `ask` pydantic-ai hands to a wait: called once with the token, it returns the answer or `None`."""

_EVENT_KEY = re.compile(r'[0-9a-f]{32}')


class ExternalEventWait(Protocol):
    """An engine's durable wait for an external event (pydantic-ai's `ExternalEventWaiter.wait`)."""

    async def __call__(self, name: str, *, ask: AskForEvent, timeout: timedelta | None) -> JsonValue:
        """Create a token, record `ask(token)`'s answer and, unless it answered, wait durably for the token's outcome.

        Args:
            name: The wait's name in the engine's history.
            ask: Called once with the token, inside a recorded unit.
            timeout: How long to wait, or `None` for as long as the engine allows.

        Returns:
            The answer of `ask`, or else the payload the token was resolved with.

        Raises:
            ExternalEventError: The timeout elapsed, or the token was failed.
        """
        ...


@contextmanager
def external_events_in_durable_run(container: str, wait: ExternalEventWait | None) -> Generator[None]:
    """Inside: `wait_for_external_event()` waits through `wait`, or is refused where the engine gives none.

    Args:
        container: Where the run is (`'a Temporal workflow'`, ...), for the refusal's message.
        wait: The engine's durable wait for this run, or `None` (refused).
    """
    if wait is None:
        with external_events_refused(container):
            yield
        return
    with waiting_for_external_events(wait):
        yield


def external_event_token(execution_id: str, event_key: str) -> str:
    """The resume token of a wait: the id of the execution that waits, and the wait's key (32 hex digits).

    Args:
        execution_id: The workflow id (Temporal, DBOS) the resolver sends the outcome to.
        event_key: A key unique to the wait, drawn from the engine's replay-safe random source.
    """
    return f'{execution_id}:{event_key}'


def parse_external_event_token(token: str, *, engine: str) -> tuple[str, str]:
    """The execution id and event key a token names (see `external_event_token`).

    Args:
        token: The token `ask` received.
        engine: The engine's name, for the message.

    Raises:
        UserError: The token was not handed out by a wait in one of the engine's executions.
    """
    execution_id, _, event_key = token.rpartition(':')
    if not execution_id or not _EVENT_KEY.fullmatch(event_key):
        raise UserError(
            f'This token was not handed out by a wait for an external event in a {engine} run: pass the token the '
            "wait's `ask` received, unchanged."
        )
    return execution_id, event_key


def external_event_payload(payload: object) -> JsonValue:
    """The JSON form of a payload, as the wait receives it (the same as in process).

    Raises:
        UserError: `payload` cannot be converted to JSON.
    """
    try:
        return to_jsonable_python(payload)
    except PydanticSerializationError as error:
        raise UserError(f'The payload of an external event must be JSON-serializable: {error}') from error
