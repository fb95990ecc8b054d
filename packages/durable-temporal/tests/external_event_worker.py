"""Worker process of the external-event restart test: `python external_event_worker.py <address> <task queue>`."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path


async def main(address: str, task_queue: str) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from external_event_agent import AGENTS, ExternalEventWorkflow
    from temporalio.client import Client
    from temporalio.worker import Worker

    from durable_temporal import AgentPlugin, PydanticAIPlugin

    client = await Client.connect(address, plugins=[PydanticAIPlugin()])
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[ExternalEventWorkflow],
        plugins=[AgentPlugin(agent) for agent in AGENTS.values()],
        # The test kills this process: let the server move the workflow to another worker quickly.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=1),
    )
    print('worker running', flush=True)
    await worker.run()


if __name__ == '__main__':
    asyncio.run(main(sys.argv[1], sys.argv[2]))
