"""The Prefect worker process the demo starts, kills and starts again: `python -m examples.demo._prefect_worker ...`.

The agent's run is a subflow of the `travel demo` flow. The first process creates the flow run (and writes its id to
a file) and runs it; the second puts the killed flow run back to Scheduled, as a worker's retry would, and runs it
again: the subflow is reattached, and the model and tool tasks that completed before the crash come from the cache.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import traceback
from pathlib import Path
from uuid import UUID

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.flow_engine import run_flow_async
from prefect.states import Scheduled

from durable_prefect import PrefectAgent
from examples.demo._journal import describe, record
from examples.demo._models import resolve_model
from examples.demo._travel import PROMPT, Traveller, build_travel_agent

MODEL_ENV = 'DURABLE_DEMO_MODEL'

prefect_travel_agent = PrefectAgent(build_travel_agent(resolve_model(os.environ.get(MODEL_ENV) or None)))


@flow(name='travel demo', persist_result=True)
async def travel_flow() -> str:
    """The demo's flow: the agent's run (its own flow, `travel_agent Run`) as a subflow."""
    result = await prefect_travel_agent.run(PROMPT, deps=Traveller())
    return result.output


async def serve(id_file: Path, start: bool) -> str:
    """Create and run the flow run (first process), or re-run the crashed one (second process)."""
    async with get_client() as client:
        if start:
            flow_run = await client.create_flow_run(travel_flow, parameters={})
            id_file.write_text(str(flow_run.id))
        else:
            flow_run_id = UUID(id_file.read_text())
            # The killed process left the flow run Running: put it back in the queue as a worker's retry would.
            await client.set_flow_run_state(flow_run_id, Scheduled(), force=True)
            flow_run = await client.read_flow_run(flow_run_id)
    output = await run_flow_async(travel_flow, flow_run=flow_run, parameters={})
    return str(output)


def main() -> None:
    """Parse the command line, run, journal the outcome."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--flow-run-id-file', type=Path, required=True)
    parser.add_argument('--start', action='store_true')
    args = parser.parse_args()
    code = 0
    try:
        output = asyncio.run(serve(args.flow_run_id_file, args.start))
        record('final', 'agent', 'travel_agent', output)
    except Exception as error:
        traceback.print_exc()
        record('error', 'agent', 'travel_agent', f'{type(error).__name__}: {describe(str(error))}')
        code = 1
    sys.exit(code)


if __name__ == '__main__':
    main()
