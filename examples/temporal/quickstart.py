"""Quick start: the agent loop runs in a Temporal workflow; each model request is an activity.

    uv run python -m examples.temporal.quickstart [--model openai:gpt-4o] [--address localhost:7233]

A worker that dies mid-run is replaced by another that replays the workflow's history: completed activities (model
requests, tool calls) are not run again.
"""

from __future__ import annotations

import uuid

from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel
from temporalio import workflow
from temporalio.worker import Worker

from durable_temporal import PydanticAIWorkflow, TemporalAgent
from examples._support import example_args, real_model_name, run_example
from examples.temporal._server import ADDRESS_HELP, temporal_client

# The agent and its durable wrapper live at module level: the worker registers their activities, and the workflow
# sandbox re-imports this module to run the agent loop deterministically.
agent = Agent(TestModel(custom_output_text='The capital of Mexico is Mexico City.'), name='geography')
temporal_agent = TemporalAgent(agent)


@workflow.defn
class GeographyWorkflow(PydanticAIWorkflow):
    """Answers one question. `__pydantic_ai_agents__` registers the agent's activities with the worker."""

    __pydantic_ai_agents__ = [temporal_agent]

    @workflow.run
    async def run(self, question: str, model: str | None) -> str:
        # `model=None` is the agent's own (fake) model; a provider string is resolved inside the activity.
        result = await temporal_agent.run(question, model=model)
        return result.output


async def main() -> None:
    args = example_args(__doc__ or '', options={'--address': ADDRESS_HELP})
    async with (
        temporal_client(args.address) as client,
        Worker(client, task_queue='geography', workflows=[GeographyWorkflow]),
    ):
        output = await client.execute_workflow(
            GeographyWorkflow.run,
            args=['What is the capital of Mexico?', real_model_name(args.model)],
            id=f'geography-{uuid.uuid4().hex[:8]}',
            task_queue='geography',
        )
    print(output)


if __name__ == '__main__':
    run_example(main, hard_exit=True)
