"""Durable waits for external events (pydantic-ai 2.78's `wait_for_external_event`) in a DBOS workflow.

pydantic-ai 2.78's own DBOS capability refuses such waits. Ours records them with DBOS's own primitives: the step
`{agent}__external_event.{name}.ask` draws the wait's key, hands the token (`{workflow id}:{key}`) to `ask` and records
the token and the answer, so recovery neither asks again nor hands out a second token; unless `ask` answered, the
workflow waits with `DBOS.recv` on a topic named after the key, a durable wait whose timeout survives recovery too.
`resolve_external_event` / `fail_external_event` end it with `DBOS.send` from any process sharing the system database
(or a `DBOSClient`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from dbos import DBOS, DBOSClient
from pydantic import JsonValue

from durable_kernel import (
    AskForEvent,
    dbos_external_event_ask_step_name,
    external_event_error,
    external_event_payload,
    external_event_token,
    parse_external_event_token,
)

from ._config import step_options

__all__ = ('DBOSEventWait', 'fail_external_event', 'resolve_external_event')

_TOPIC_PREFIX = 'pydantic_ai__external_event:'
"""The `DBOS.recv` topic of a wait is this and its key: apart from any topic of the application's own."""

_NO_LIMIT = timedelta(days=1)
"""How long one `DBOS.recv` waits when the wait has no timeout (it is asked again, each time recorded)."""


def _topic(event_key: str) -> str:
    return f'{_TOPIC_PREFIX}{event_key}'


@dataclass
class DBOSEventWait:
    """The durable wait of one agent's runs in DBOS workflow code (see the module docstring)."""

    agent_name: str

    async def __call__(self, name: str, *, ask: AskForEvent, timeout: timedelta | None) -> JsonValue:
        """Wait for an external event in the running workflow (see `durable_kernel.ExternalEventWait`)."""
        workflow_id = DBOS.workflow_id
        assert workflow_id is not None  # installed only in workflow code

        async def ask_step() -> dict[str, Any]:
            # In the step: a key drawn in workflow code would differ on recovery, the recorded one does not.
            event_key = uuid.uuid4().hex
            answer = await ask(external_event_token(workflow_id, event_key))
            return {'event_key': event_key, 'answer': answer}

        options = step_options(dbos_external_event_ask_step_name(self.agent_name, name))
        asked: dict[str, Any] = await DBOS.run_step_async(options, ask_step)
        if asked['answer'] is not None:
            return asked['answer']
        topic = _topic(asked['event_key'])
        if timeout is not None:
            message = await DBOS.recv_async(topic, timeout_seconds=timeout.total_seconds())
            if message is None:
                raise external_event_error(f'No resolution arrived within {timeout}.')
        else:
            message = None
            while message is None:
                message = await DBOS.recv_async(topic, timeout_seconds=_NO_LIMIT.total_seconds())
        if message.get('error') is not None:
            raise external_event_error(message['error'])
        return message.get('payload')


async def resolve_external_event(token: str, payload: object, *, client: DBOSClient | None = None) -> None:
    """End a wait for an external event in a DBOS workflow with `payload`.

    The token is the one `pydantic_ai.external_events.wait_for_external_event` handed to its `ask` inside a DBOS
    workflow running an agent with [`DBOSDurability`][durable_dbos.DBOSDurability] or
    [`DBOSAgent`][durable_dbos.DBOSAgent] (pydantic-ai 2.78+), for example the handler of pydantic-ai's
    `HandleDeferredToolCalls` that takes a token. It names the workflow, which this sends a message (`DBOS.send`).
    Call it from a process where DBOS is launched, or pass a `DBOSClient` of the system database. A message sent
    before the workflow waits is kept for it; the wait takes the first one.

    Args:
        token: The resume token `ask` received.
        payload: The answer (its JSON form reaches the wait), such as the JSON form of `DeferredToolResults`.
        client: A client of the workflow's system database; without one, the launched DBOS of this process sends.

    Raises:
        UserError: The token was not handed out by a wait in a DBOS workflow, or `payload` cannot be converted to JSON.
    """
    await _send(token, {'payload': external_event_payload(payload), 'error': None}, client)


async def fail_external_event(token: str, reason: str, *, client: DBOSClient | None = None) -> None:
    """End a wait for an external event in a DBOS workflow without a payload.

    The wait raises pydantic-ai's `ExternalEventError` with `reason`, as on a timeout; `HandleDeferredToolCalls` then
    denies the pending calls with `reason` in its message to the model.

    Args:
        token: The resume token `ask` received.
        reason: Why no answer is coming.
        client: A client of the workflow's system database; without one, the launched DBOS of this process sends.

    Raises:
        UserError: The token was not handed out by a wait in a DBOS workflow.
    """
    await _send(token, {'payload': None, 'error': reason}, client)


async def _send(token: str, message: dict[str, Any], client: DBOSClient | None) -> None:
    workflow_id, event_key = parse_external_event_token(token, engine='DBOS')
    if client is not None:
        await client.send_async(workflow_id, message, _topic(event_key))
    else:
        await DBOS.send_async(workflow_id, message, _topic(event_key))
