"""Agents waiting for an external event (pydantic-ai 2.78+) in DBOS workflows, for the tests and the process they kill.

`python external_event_app.py URL LOG NAME WORKFLOW_ID` starts the capability form's workflow on a fresh database,
waits until the `ask` step is recorded (the run now waits in `DBOS.recv`), and dies (`os._exit(17)`). The test
process resolves the token and recovers the workflow with the same agent (`build(NAME, ...)`).

`ask` appends `ask {token}` to LOG (`DURABLE_EXTERNAL_EVENT_LOG`), so the test reads the token there and counts the
asks. The run's `deps` is the mode: `'answer'` answers in `ask`, `'timeout'` waits `WAIT_TIMEOUT` at most.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

from dbos import DBOS, SetWorkflowID
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import ModelRequest
from pydantic_ai.models.test import TestModel

from durable_dbos import DBOSAgent, DBOSDurability
from durable_dbos.testing import dbos_session

WAIT_TIMEOUT = timedelta(seconds=2)


def ask_for_approval(token: str, mode: str) -> str | None:
    """Log the token; answer at once only in the `'answer'` mode."""
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


def build(name: str, form: str) -> Callable[[str], Coroutine[Any, Any, str]]:
    """The agent named `name` in `form`, and the workflow (registered now, before launch) that runs it in a mode."""
    if form == 'capability':
        agent: Any = Agent(
            TestModel(), name=name, deps_type=str, instructions=wait_for_approval, capabilities=[DBOSDurability()]
        )
    else:
        agent = DBOSAgent(Agent(TestModel(), name=name, deps_type=str, instructions=wait_for_approval))

    @DBOS.workflow(name=f'{name}.waits')
    async def waits(mode: str) -> str:
        result = await agent.run('go', deps=mode)
        request = result.all_messages()[0]
        assert isinstance(request, ModelRequest)
        return request.instructions or ''

    return waits


def refund(amount: int) -> str:
    """Refund `amount` (needs approval)."""
    return f'refunded {amount}'


def hand_over_for_approval(ctx: RunContext[str], requests: Any, token: str) -> None:
    """A `HandleDeferredToolCalls` handler that takes a token: logs it and the pending call, and waits for the answer."""
    with open(os.environ['DURABLE_EXTERNAL_EVENT_LOG'], 'a') as log:
        log.write(f'ask {token}\n')
        log.write(f'call {requests.approvals[0].tool_call_id}\n')


def build_approval(name: str) -> Callable[[], Coroutine[Any, Any, str]]:
    """An agent whose tool needs approval, decided through `HandleDeferredToolCalls` with a token, and its workflow."""
    from pydantic_ai import capabilities as capability_classes
    from pydantic_ai.tools import Tool

    # Any: the lock's pydantic-ai (which pyright reads) has no such class, 2.78's types only the tokenless handler.
    handle_deferred: Any = getattr(capability_classes, 'HandleDeferredToolCalls')  # noqa: B009
    agent = Agent(
        TestModel(),
        name=name,
        deps_type=str,
        tools=[Tool(refund, requires_approval=True)],
        capabilities=[DBOSDurability(), handle_deferred(hand_over_for_approval)],
    )

    @DBOS.workflow(name=f'{name}.refunds')
    async def refunds() -> str:
        return (await agent.run('go', deps='signal')).output

    return refunds


def main() -> None:
    url, log, name, workflow_id = sys.argv[1:5]
    os.environ['DURABLE_EXTERNAL_EVENT_LOG'] = log
    with dbos_session(url) as launch:
        waits = build(name, 'capability')
        launch()

        async def start_and_die() -> None:
            with SetWorkflowID(workflow_id):
                await DBOS.start_workflow_async(waits, 'signal')
            # Once the `ask` step is recorded the run waits in `DBOS.recv`: die there.
            deadline = time.monotonic() + 60
            while not any(
                step['function_name'] == f'{name}__external_event.approval.ask'
                for step in await DBOS.list_workflow_steps_async(workflow_id)
            ):
                assert time.monotonic() < deadline, 'the ask step was never recorded'
                await asyncio.sleep(0.05)
            os._exit(17)

        asyncio.run(start_and_die())


if __name__ == '__main__':
    main()
