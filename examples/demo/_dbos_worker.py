"""The process the DBOS demo starts, kills and starts again: `python -m examples.demo._dbos_worker ...`.

Each process constructs the same `DBOSAgent` before `DBOS.launch()`. The first one starts the workflow under a known
id; the second one starts nothing: `DBOS.launch()` finds the unfinished workflow in the database and recovers it, and
the process only waits for its result.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from dbos import DBOS, DBOSConfig, SetWorkflowID, WorkflowHandle
from pydantic_ai.agent import AgentRunResult

from durable_dbos import DBOSAgent
from examples.demo._journal import describe, record
from examples.demo._models import resolve_model
from examples.demo._travel import PROMPT, Traveller, build_travel_agent


def dbos_config(database_url: str) -> DBOSConfig:
    """The demo's DBOS configuration: one embedded SQLite file (or a Postgres URL)."""
    return {
        'name': 'durable-demo',
        'system_database_url': database_url,
        'notification_listener_polling_interval_sec': 0.05,
        'log_level': 'WARNING',
    }


def main(argv: list[str] | None = None) -> int:
    """Run or recover the demo workflow, then journal its final answer."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--database-url', required=True)
    parser.add_argument('--workflow-id', required=True)
    parser.add_argument('--start', action='store_true', help='start the workflow (else: recover it)')
    parser.add_argument('--model', default=None)
    parser.add_argument('--tools-not-durable', action='store_true', help='tool calls are not steps')
    args = parser.parse_args(argv)

    DBOS(config=dbos_config(args.database_url))
    agent = DBOSAgent(build_travel_agent(resolve_model(args.model)), function_tool_steps=not args.tools_not_durable)
    DBOS.launch()
    try:
        if args.start:

            async def start() -> str:
                with SetWorkflowID(args.workflow_id):
                    result = await agent.run(PROMPT, deps=Traveller())
                return result.output

            output = asyncio.run(start())
        else:
            # `DBOS.launch()` already recovered the workflow (it was PENDING for this executor): wait for it.
            handle: WorkflowHandle[AgentRunResult[str]] = DBOS.retrieve_workflow(args.workflow_id)
            output = handle.get_result().output
        record('final', 'agent', 'travel_agent', output)
    except Exception as error:
        record('error', 'agent', 'travel_agent', f'{type(error).__name__}: {describe(str(error))}')
        raise
    finally:
        DBOS.destroy()
    return 0


if __name__ == '__main__':
    code = main()
    sys.stdout.flush()
    os._exit(code)
