"""Quick start: an agent run is a Prefect flow; each model request is a task whose result is cached.

    uv run python -m examples.prefect.quickstart [--model openai:gpt-4o]

When a flow run fails or crashes and is retried (or resumed), its completed model and tool tasks are found in the
cache and not run again.
"""

from __future__ import annotations

from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel

from durable_prefect import PrefectAgent
from examples._support import choose_model, example_args, run_example


async def main() -> None:
    args = example_args(__doc__ or '')
    model = choose_model(args.model, TestModel(custom_output_text='The capital of Mexico is Mexico City.'))
    # The agent's name names its flow ('geography Run') and tasks.
    agent = Agent(model, name='geography', instructions='Be concise, reply with one sentence.')
    prefect_agent = PrefectAgent(agent)

    result = await prefect_agent.run('What is the capital of Mexico?')
    print(result.output)


if __name__ == '__main__':
    run_example(main)
