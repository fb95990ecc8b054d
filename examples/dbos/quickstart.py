"""Quick start: an agent whose run is a DBOS workflow and whose model requests are DBOS steps.

    uv run python -m examples.dbos.quickstart [--model openai:gpt-4o]

DBOS records every step in its system database (an SQLite file here; PostgreSQL in production): if the process dies,
the next `DBOS.launch()` resumes the run after the last recorded step.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from dbos import DBOS
from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel

from durable_dbos import DBOSAgent
from examples._support import choose_model, example_args, run_example


async def main() -> None:
    args = example_args(__doc__ or '')
    model = choose_model(args.model, TestModel(custom_output_text='The capital of Mexico is Mexico City.'))

    # 1. A plain agent (it needs a name: it names the DBOS workflow and steps) wrapped in `DBOSAgent`...
    agent = Agent(model, name='geography', instructions='Be concise, reply with one sentence.')
    dbos_agent = DBOSAgent(agent)

    # 2. ...constructed before `DBOS.launch()`, so that a restarted process can recover its workflows.
    with tempfile.TemporaryDirectory() as tmp:
        DBOS(
            config={
                'name': 'quickstart',
                'system_database_url': f'sqlite:///{Path(tmp) / "dbos.sqlite"}',
                'log_level': 'WARNING',
            }
        )
        DBOS.launch()
        try:
            result = await dbos_agent.run('What is the capital of Mexico?')
            print(result.output)
        finally:
            DBOS.destroy()


if __name__ == '__main__':
    run_example(main)
