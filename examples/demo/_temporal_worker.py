"""The Temporal worker the demo starts, kills and starts again: `python -m examples.demo._temporal_worker ...`.

The first process also starts the workflow; the second only runs a worker on the same task queue, and waits for the
result: the server hands it the unfinished workflow, whose history it replays (completed activities are not re-run).
The model comes from the `DURABLE_DEMO_MODEL` environment variable (not the command line): the workflow sandbox
re-imports this module, and must build the same agent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import traceback
from datetime import timedelta

from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

from durable_temporal import PydanticAIPlugin, PydanticAIWorkflow, TemporalAgent
from examples.demo._journal import describe, record
from examples.demo._models import resolve_model
from examples.demo._travel import PROMPT, Traveller, build_travel_agent

MODEL_ENV = 'DURABLE_DEMO_MODEL'
TASK_QUEUE = 'durable-demo'

_real_model = os.environ.get(MODEL_ENV) or None
travel_agent = TemporalAgent(
    build_travel_agent(resolve_model(_real_model)),
    # A killed worker's in-flight activity is retried once its timeout passes: keep it short for the fake model.
    activity_config={
        'start_to_close_timeout': timedelta(seconds=120 if _real_model else 4),
        'retry_policy': RetryPolicy(initial_interval=timedelta(milliseconds=200)),
    },
)


@workflow.defn
class TravelWorkflow(PydanticAIWorkflow):
    """The demo's durable agent run."""

    __pydantic_ai_agents__ = [travel_agent]

    @workflow.run
    async def run(self, prompt: str) -> str:
        result = await travel_agent.run(prompt, deps=Traveller())
        return result.output


async def serve(address: str, workflow_id: str, start: bool) -> str:
    """Run a worker; start the workflow (first process) or just wait for it (second); return its output."""
    client = await Client.connect(address, plugins=[PydanticAIPlugin()])
    # No workflow cache: every workflow task replays the history (and a dead worker holds no sticky task queue).
    async with Worker(client, task_queue=TASK_QUEUE, workflows=[TravelWorkflow], max_cached_workflows=0):
        if start:
            handle = await client.start_workflow(TravelWorkflow.run, PROMPT, id=workflow_id, task_queue=TASK_QUEUE)
        else:
            handle = client.get_workflow_handle(workflow_id)
        return await handle.result()


def main() -> None:
    """Parse the command line, serve, journal the outcome, leave."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--address', required=True)
    parser.add_argument('--workflow-id', required=True)
    parser.add_argument('--start', action='store_true')
    args = parser.parse_args()
    code = 0
    try:
        output = asyncio.run(serve(args.address, args.workflow_id, args.start))
        record('final', 'agent', 'travel_agent', output)
    except Exception as error:
        traceback.print_exc()
        record('error', 'agent', 'travel_agent', f'{type(error).__name__}: {describe(str(error))}')
        code = 1
    # Leave at once: the SDK's threads can abort a normal interpreter exit (see ENGINES.md).
    os._exit(code)


if __name__ == '__main__':
    main()
