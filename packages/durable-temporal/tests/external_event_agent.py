"""Agents that wait for an external event (pydantic-ai 2.78+), shared by the tests and the worker process they kill.

The agents' instructions wait: `ask` appends `ask {token}` to the file named by `DURABLE_EXTERNAL_EVENT_LOG`, so the
test reads the token there (and counts how often `ask` ran), and answers at once only in the `'answer'` mode. The
mode is the run's `deps`; the workflow returns the instructions the model was given, which carry the outcome.
"""

from __future__ import annotations

import functools
import os
from datetime import timedelta
from typing import Any

from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import ModelRequest
from pydantic_ai.models.test import TestModel
from temporalio import workflow

from durable_kernel import HAS_EXTERNAL_EVENTS
from durable_temporal import TemporalAgent, TemporalDurability

WAIT_TIMEOUT = timedelta(seconds=2)
"""The timeout of the `'timeout'` mode's wait."""


def ask_for_approval(token: str, mode: str) -> str | None:
    """Log the token; answer at once only in the `'answer'` mode (otherwise the token's resolver answers)."""
    with open(os.environ['DURABLE_EXTERNAL_EVENT_LOG'], 'a') as log:
        log.write(f'ask {token}\n')
    return 'answered by ask' if mode == 'answer' else None


async def wait_for_approval(ctx: RunContext[str]) -> str:
    """Instructions that wait for an external event, in workflow code; the outcome becomes the instructions."""
    from pydantic_ai.external_events import (  # pyright: ignore[reportMissingImports]
        ExternalEventError,  # pyright: ignore[reportUnknownVariableType]
        wait_for_external_event,  # pyright: ignore[reportUnknownVariableType]
    )

    mode = ctx.deps
    timeout = WAIT_TIMEOUT if mode == 'timeout' else None
    try:
        answer: Any = await wait_for_external_event(  # pyright: ignore[reportUnknownVariableType]
            'approval', ask=functools.partial(ask_for_approval, mode=mode), timeout=timeout
        )
    except ExternalEventError as error:  # pyright: ignore[reportUnknownVariableType]
        return f'no approval: {error}'
    return f'approval: {answer}'


external_capability_agent = Agent(
    TestModel(), name='ext_cap', deps_type=str, instructions=wait_for_approval, capabilities=[TemporalDurability()]
)
external_wrapped_agent = TemporalAgent(
    Agent(TestModel(), name='ext_wrap', deps_type=str, instructions=wait_for_approval)
)
AGENTS: dict[str, Any] = {'capability': external_capability_agent, 'wrapper': external_wrapped_agent}


def first_instructions(messages: list[Any]) -> str:
    """The instructions of a run's first model request."""
    request = messages[0]
    assert isinstance(request, ModelRequest)
    return request.instructions or ''


def refund(amount: int) -> str:
    """Refund `amount` (needs approval)."""
    return f'refunded {amount}'


def hand_over_for_approval(ctx: RunContext[str], requests: Any, token: str) -> None:
    """A `HandleDeferredToolCalls` handler that takes a token: logs it and the pending call, and waits for the answer."""
    with open(os.environ['DURABLE_EXTERNAL_EVENT_LOG'], 'a') as log:
        log.write(f'ask {token}\n')
        log.write(f'call {requests.approvals[0].tool_call_id}\n')


def approval_agent(name: str, *capabilities: Any, handler_id: str | None = None) -> Agent[str, str]:
    from pydantic_ai import capabilities as capability_classes
    from pydantic_ai.tools import Tool

    # Any: the lock's pydantic-ai (which pyright reads) has no such class, 2.78's types only the tokenless handler.
    handle_deferred: Any = getattr(capability_classes, 'HandleDeferredToolCalls')  # noqa: B009

    return Agent(
        TestModel(),
        name=name,
        deps_type=str,
        tools=[Tool(refund, requires_approval=True)],
        capabilities=[*capabilities, handle_deferred(hand_over_for_approval, id=handler_id)],
    )


if HAS_EXTERNAL_EVENTS:  # `HandleDeferredToolCalls` takes a token from pydantic-ai 2.78
    AGENTS['approval-capability'] = approval_agent('ext_approval_cap', TemporalDurability())
    AGENTS['approval-wrapper'] = TemporalAgent(approval_agent('ext_approval_wrap'))
    # With an `id`, the handler is the capability's durable operation: asked in its activity, as pydantic-ai 2.78 does.
    AGENTS['approval-with-id'] = approval_agent('ext_approval_id', TemporalDurability(), handler_id='approver')
    # The wrapper asks there too, where it runs capability operations in activities (its switch).
    AGENTS['approval-wrapper-with-id'] = TemporalAgent(approval_agent('ext_approval_wrap_id', handler_id='approver'))


@workflow.defn
class ExternalEventWorkflow:
    """Runs the agent of `form` in `mode` and returns the instructions its wait produced."""

    @workflow.run
    async def run(self, form: str, mode: str) -> str:
        result = await AGENTS[form].run('go', deps=mode)
        if form.startswith('approval'):
            return result.output
        return first_instructions(result.all_messages())


__all__ = ('AGENTS', 'HAS_EXTERNAL_EVENTS', 'ExternalEventWorkflow', 'WAIT_TIMEOUT')
