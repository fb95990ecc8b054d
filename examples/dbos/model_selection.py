"""Model selection at run time: pass one of the agent's `DBOSModel`s to `run(model=...)`.

    uv run python -m examples.dbos.model_selection [--model openai:gpt-4o] [--smart]

A DBOS workflow may only use models whose requests are DBOS steps: wrap each alternative in `DBOSModel` (with its
own `step_name_prefix`) before `DBOS.launch()`, then choose per run. A plain model or a model name string passed to
`run` is refused, since its requests would escape the workflow's record.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from dbos import DBOS
from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel

from durable_dbos import DBOSAgent, DBOSModel
from examples._support import choose_model, example_args, run_example


async def main() -> None:
    args = example_args(__doc__ or '', flags={'--smart': 'use the "smart" model for this run'})
    fast = TestModel(custom_output_text='(fast model) Paris.', model_name='fast-model')
    smart = choose_model(
        args.model, TestModel(custom_output_text='(smart model) Paris, since 508 AD.', model_name='smart-model')
    )

    agent = Agent(fast, name='router')
    dbos_agent = DBOSAgent(agent)
    # The alternative model, registered before launch. Its steps are named `router_smart__model.request`.
    smart_model = DBOSModel(smart, step_name_prefix='router_smart')

    with tempfile.TemporaryDirectory() as tmp:
        url = f'sqlite:///{Path(tmp) / "dbos.sqlite"}'
        DBOS(config={'name': 'model-selection', 'system_database_url': url, 'log_level': 'WARNING'})
        DBOS.launch()
        try:
            result = await dbos_agent.run('What is the capital of France?', model=smart_model if args.smart else None)
            print(f'{result.response.model_name}: {result.output}')
        finally:
            DBOS.destroy()


if __name__ == '__main__':
    run_example(main)
