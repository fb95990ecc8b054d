"""Model selection at run time: pass a `PrefectModel` to `run(model=...)`.

    uv run python -m examples.prefect.model_selection [--model openai:gpt-4o] [--smart]

Inside a flow, a model's requests must be Prefect tasks: wrap each alternative in `PrefectModel` and choose per run.
A plain model (or a model name) passed to `run` is refused, since its requests would not be tasks.
"""

from __future__ import annotations

from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel

from durable_prefect import PrefectAgent, PrefectModel
from examples._support import choose_model, example_args, run_example


async def main() -> None:
    args = example_args(__doc__ or '', flags={'--smart': 'use the "smart" model for this run'})
    fast = TestModel(custom_output_text='(fast model) Paris.', model_name='fast-model')
    smart = choose_model(
        args.model, TestModel(custom_output_text='(smart model) Paris, since 508 AD.', model_name='smart-model')
    )

    prefect_agent = PrefectAgent(Agent(fast, name='router'))
    smart_model = PrefectModel(smart)  # its requests are the tasks 'Model Request: smart-model'

    result = await prefect_agent.run('What is the capital of France?', model=smart_model if args.smart else None)
    print(f'{result.response.model_name}: {result.output}')


if __name__ == '__main__':
    run_example(main)
