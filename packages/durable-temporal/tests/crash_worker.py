"""Worker process of the crash test: `python crash_worker.py <server address> <task queue>` (killed by the test)."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path


async def main(address: str, task_queue: str) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from crash_agent import (
        CrashWorkflow,
        HeartbeatCrashWorkflow,
        LiveCrashWorkflow,
        LocalCrashWorkflow,
        heartbeat_crash_agent,
        live_crash_agent,
        local_crash_agent,
        temporal_crash_agent,
    )
    from temporalio.client import Client
    from temporalio.worker import Worker

    from durable_temporal import AgentPlugin, PydanticAIPlugin

    client = await Client.connect(address, plugins=[PydanticAIPlugin()])
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[CrashWorkflow, LiveCrashWorkflow, HeartbeatCrashWorkflow, LocalCrashWorkflow],
        plugins=[
            AgentPlugin(temporal_crash_agent),
            AgentPlugin(live_crash_agent),
            AgentPlugin(heartbeat_crash_agent),
            AgentPlugin(local_crash_agent),
        ],
        # The test kills this process: let the server move the workflow to another worker quickly.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=1),
    )
    print('worker running', flush=True)
    await worker.run()


if __name__ == '__main__':
    asyncio.run(main(sys.argv[1], sys.argv[2]))
