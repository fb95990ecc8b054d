"""Production: a DBOS worker on PostgreSQL serving a queue of agent runs; clients enqueue with `DBOSClient`.

    DBOS_SYSTEM_DATABASE_URL=postgresql://user:pass@host/db uv run python -m examples.dbos.production
    uv run python -m examples.dbos.production --once   # a throwaway local Postgres, one enqueued run, then exit

Run as many worker processes as you like against one database: each takes runs from the queue (at most
`worker_concurrency` at a time), and when a worker dies, `DBOS.launch()` in its replacement (same executor id, or
DBOS Conductor) recovers its unfinished runs after their last recorded step. Any process can enqueue a run:

    client = DBOSClient(system_database_url=url)
    handle = client.enqueue({'queue_name': 'agent_runs', 'workflow_name': 'answer_question'}, 'my question')
    print(handle.get_result())
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Generator
from contextlib import contextmanager

from dbos import DBOS, DBOSClient, WorkflowHandleAsync
from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel

from durable_dbos import DBOSAgent
from examples._support import choose_model, example_args, run_example

QUEUE = 'agent_runs'


@contextmanager
def database_url(url: str | None, once: bool) -> Generator[str]:
    """The Postgres URL to use; with `--once` and no URL, a private server in a temp dir (stopped on exit)."""
    if url:
        yield url
        return
    if not once:
        sys.exit('Set DBOS_SYSTEM_DATABASE_URL (or pass --once to try it on a throwaway local PostgreSQL).')
    from durable_dbos.testing import postgres_server, postgres_url

    with tempfile.TemporaryDirectory() as tmp, postgres_server(tmp) as server:
        yield postgres_url(server, 'agent_app')


async def main() -> None:
    args = example_args(__doc__ or '', once=True)
    agent = Agent(
        choose_model(args.model, TestModel(custom_output_text='Durable workers: runs survive restarts.')),
        name='assistant',
    )
    dbos_agent = DBOSAgent(agent)

    @DBOS.workflow(name='answer_question')
    async def answer_question(question: str) -> str:
        result = await dbos_agent.run(question)
        return result.output

    with database_url(os.environ.get('DBOS_SYSTEM_DATABASE_URL'), args.once) as url:
        DBOS(config={'name': 'agent-app', 'system_database_url': url, 'log_level': 'WARNING'})
        DBOS.launch()
        try:
            await DBOS.register_queue_async(QUEUE, worker_concurrency=4, polling_interval_sec=0.2)
            if not args.once:
                print(f'Serving the {QUEUE!r} queue; Ctrl-C to stop.')
                await asyncio.Event().wait()
            # What a client process (a web server, a cron job...) does: enqueue by workflow name, wait if it likes.
            client = DBOSClient(system_database_url=url)
            try:
                handle: WorkflowHandleAsync[str] = await client.enqueue_async(
                    {'queue_name': QUEUE, 'workflow_name': 'answer_question'}, 'Why run agents from a queue?'
                )
                print(await handle.get_result())
            finally:
                client.destroy()
        finally:
            DBOS.destroy()


if __name__ == '__main__':
    run_example(main)
