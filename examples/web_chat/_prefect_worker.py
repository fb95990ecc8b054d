"""The Prefect worker the web server starts, and that its kill button (or `kill -9 <pid>`) ends.

    PREFECT_API_URL=... python -m examples.web_chat._prefect_worker [--model ...] [--token-delay 0.15]

The web server creates one `web chat turn` flow run per chat turn (Scheduled); this process picks the oldest
scheduled one and runs it. The agent carries `PrefectDurability(event_stream_topic=...)`, so it publishes its events
to the flow run's artifacts. A worker that starts after another one was killed first puts the flow runs its
predecessor left `Running` back to Scheduled (as a Prefect worker's retry would) and runs them again: the tasks that
completed (the tool call) come from their cache, the model request that was streaming runs again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import traceback
from typing import Any

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.flow_engine import run_flow_async
from prefect.states import Scheduled
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessagesTypeAdapter

from durable_prefect import PrefectDurability
from examples.web_chat._agent import TOPIC, build_agent

FLOW = 'web chat turn'

_agent: list[Agent[None, str]] = []
"""The agent this worker runs (built by `main` from the command line)."""


@flow(name=FLOW, persist_result=False)
async def chat_turn(prompt: str, history: list[Any]) -> str:
    """One chat turn: the agent's run publishes its events to this flow run's artifacts."""
    result = await _agent[0].run(prompt, message_history=ModelMessagesTypeAdapter.validate_python(history))
    return result.output


def _runs_in(state: StateType) -> dict[str, Any]:
    return {
        'flow_filter': FlowFilter(name=FlowFilterName(any_=[FLOW])),
        'flow_run_filter': FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[state]))),
    }


async def serve() -> None:
    """Resume what a killed predecessor left running, then run scheduled turns one at a time."""
    async with get_client() as client:
        for run in await client.read_flow_runs(**_runs_in(StateType.RUNNING)):
            await client.set_flow_run_state(run.id, Scheduled(), force=True)
        print(f'worker ready (pid {os.getpid()})', flush=True)
        parent = os.getppid()
        while os.getppid() == parent:  # until orphaned (the web server died without stopping its worker)
            runs = await client.read_flow_runs(
                **_runs_in(StateType.SCHEDULED), sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=1
            )
            if not runs:
                await asyncio.sleep(0.3)
                continue
            run = runs[0]
            try:
                await run_flow_async(chat_turn, flow_run=run, parameters=run.parameters)
            except Exception:
                traceback.print_exc()  # the flow run is Failed; the page sees its stream end without a result


def main(argv: list[str] | None = None) -> None:
    """Build the agent from the command line and serve until SIGTERM/SIGINT (or SIGKILL)."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--model', default=None)
    parser.add_argument('--token-delay', type=float, default=0.15)
    args = parser.parse_args(argv)
    durability: PrefectDurability[None] = PrefectDurability(event_stream_topic=TOPIC)
    _agent.append(build_agent(args.model, args.token_delay, [durability]))
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops like Ctrl-C
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == '__main__':
    main()
    sys.exit(0)
