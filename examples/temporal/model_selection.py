"""Model selection at run time: register models with `models=`, choose one per run by key, or pass a provider string.

    uv run python -m examples.temporal.model_selection [--smart] [--model openai:gpt-4o] [--address localhost:7233]

Model objects cannot travel through a workflow's history, so the workflow picks a model by key (`'smart'`) or by a
`provider:model` string. A string is resolved inside the activity, with `provider_factory` building the provider
(here it could read an API key from the run's `deps`, e.g. per tenant).
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic_ai import Agent, RunContext
from pydantic_ai.models.test import TestModel
from pydantic_ai.providers import Provider, infer_provider
from temporalio import workflow
from temporalio.worker import Worker

from durable_temporal import PydanticAIWorkflow, TemporalAgent
from examples._support import example_args, real_model_name, run_example
from examples.temporal._server import ADDRESS_HELP, temporal_client


def provider_factory(ctx: RunContext[Any], provider_name: str) -> Provider[Any]:
    """Build the provider of a model string chosen at run time (inside the activity)."""
    return infer_provider(provider_name)  # e.g. OpenAIProvider(api_key=ctx.deps.openai_key) for per-tenant keys


fast = TestModel(custom_output_text='(fast model) Paris.', model_name='fast-model')
smart = TestModel(custom_output_text='(smart model) Paris, since 508 AD.', model_name='smart-model')
agent = Agent(fast, name='router')
temporal_agent = TemporalAgent(agent, models={'smart': smart}, provider_factory=provider_factory)


@workflow.defn
class RouterWorkflow(PydanticAIWorkflow):
    """Answers with the model chosen by the caller."""

    __pydantic_ai_agents__ = [temporal_agent]

    @workflow.run
    async def run(self, question: str, model: str | None) -> str:
        # None: the agent's own model; 'smart': a registered model; 'openai:gpt-4o': built by provider_factory.
        result = await temporal_agent.run(question, model=model)
        return f'{result.response.model_name}: {result.output}'


async def main() -> None:
    args = example_args(
        __doc__ or '', flags={'--smart': 'use the registered "smart" model'}, options={'--address': ADDRESS_HELP}
    )
    model = real_model_name(args.model) or ('smart' if args.smart else None)
    async with temporal_client(args.address) as client, Worker(client, task_queue='router', workflows=[RouterWorkflow]):
        output = await client.execute_workflow(
            RouterWorkflow.run,
            args=['What is the capital of France?', model],
            id=f'router-{uuid.uuid4().hex[:8]}',
            task_queue='router',
        )
    print(output)


if __name__ == '__main__':
    run_example(main, hard_exit=True)
