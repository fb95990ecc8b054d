"""The engine-agnostic rules of waits for external events: the token's shape and the payload's JSON form."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from pydantic_ai.exceptions import UserError

from durable_kernel import (
    dbos_external_event_ask_step_name,
    external_event_payload,
    external_event_token,
    parse_external_event_token,
    temporal_activity_name,
)


def test_a_token_names_the_execution_and_the_wait_and_parses_back():
    key = uuid.uuid4().hex
    # A workflow id may itself contain colons: the key is what follows the last one.
    token = external_event_token('orders:42', key)
    assert token == f'orders:42:{key}'
    assert parse_external_event_token(token, engine='Temporal') == ('orders:42', key)


@pytest.mark.parametrize(
    'token', ['', 'no-key', ':0c1694d42ced4887890bbe9775ca241e', 'wf:0123', 'wf:E4FEEFAFF2C4474EA15B826AD0116724']
)
def test_a_token_not_handed_out_by_a_wait_is_refused(token: str):
    with pytest.raises(UserError, match='not handed out by a wait for an external event in a DBOS run'):
        parse_external_event_token(token, engine='DBOS')


@dataclass
class Decision:
    approved: bool


def test_a_payload_reaches_the_wait_as_its_json_form():
    assert external_event_payload(Decision(True)) == {'approved': True}
    with pytest.raises(UserError, match='JSON-serializable'):
        external_event_payload(object())


def test_unit_names():
    # pydantic-ai 2.78's Temporal name; on DBOS, the name Pydantic AI Harness gives the step on AWS Lambda.
    assert temporal_activity_name('support', 'external_event_ask') == 'agent__support__external_event_ask'
    assert dbos_external_event_ask_step_name('support', 'approval') == 'support__external_event.approval.ask'
