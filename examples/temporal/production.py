"""Production: a long-running Temporal worker for an agent, stopped gracefully on SIGTERM / Ctrl-C.

    TEMPORAL_ADDRESS=temporal.internal:7233 uv run python -m examples.temporal.production
    uv run python -m examples.temporal.production --once   # a local dev server, one run, then exit

Run as many workers as you like on the task queue: Temporal hands each workflow task and activity to one of them,
and when a worker dies, its work moves to the others (activities after their timeout). Clients start runs with:

    client = await Client.connect('temporal.internal:7233', plugins=[PydanticAIPlugin()])
    answer = await client.execute_workflow(AssistantWorkflow.run, 'question', id='...', task_queue='assistant')
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from datetime import timedelta

from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

from durable_temporal import PydanticAIWorkflow, TemporalAgent
from examples._support import example_args, real_model_name, run_example
from examples.temporal._server import temporal_client

TASK_QUEUE = 'assistant'

agent = Agent(
    TestModel(custom_output_text='Durable workers: runs survive restarts.'),
    name='assistant',
)
temporal_agent = TemporalAgent(
    agent,
    # Model calls can be slow and flaky: a generous timeout and a few retries with backoff.
    model_activity_config={
        'start_to_close_timeout': timedelta(minutes=5),
        'retry_policy': RetryPolicy(maximum_attempts=5, initial_interval=timedelta(seconds=2)),
    },
)


@workflow.defn
class AssistantWorkflow(PydanticAIWorkflow):
    """Answers one question."""

    __pydantic_ai_agents__ = [temporal_agent]

    @workflow.run
    async def run(self, question: str, model: str | None = None) -> str:
        result = await temporal_agent.run(question, model=model)
        return result.output


async def serve(address: str | None, once: bool, model: str | None) -> None:
    """Run the worker until SIGTERM/SIGINT (or, with `once`, until one run is done)."""
    async with temporal_client(address) as client:
        worker = Worker(
            client,
            task_queue=TASK_QUEUE,
            workflows=[AssistantWorkflow],
            graceful_shutdown_timeout=timedelta(seconds=30),
        )
        async with worker:
            if once:
                answer = await client.execute_workflow(
                    AssistantWorkflow.run,
                    args=['Why run agents on workers?', model],
                    id=f'assistant-{uuid.uuid4().hex[:8]}',
                    task_queue=TASK_QUEUE,
                )
                print(answer)
                return
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            print(f'Worker polling task queue {TASK_QUEUE!r}; SIGTERM or Ctrl-C to stop.')
            await stop.wait()
        # Leaving `async with worker` waits for running activities (up to graceful_shutdown_timeout).


async def main() -> None:
    args = example_args(__doc__ or '', once=True)
    address = os.environ.get('TEMPORAL_ADDRESS')
    if address is None and not args.once:
        address = 'localhost:7233'
    await serve(address, args.once, real_model_name(args.model))


if __name__ == '__main__':
    run_example(main, hard_exit=True)
