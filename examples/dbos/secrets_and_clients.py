"""Secrets and clients: the workflow records a customer id; the live API client (and its key) is rebuilt from it.

    uv run python -m examples.dbos.secrets_and_clients [--model openai:gpt-4o]

DBOS pickles a workflow's inputs, `deps` included, into its system database. With `DBOSAgent(deps_resolver=...)` it
records `reference(deps)` (the customer id) and rebuilds the live deps with `resolve(...)` when the workflow runs and
when it is recovered; steps see the live client. The example then searches the SQLite file for the key.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from dbos import DBOS
from pydantic_ai import Agent
from pydantic_ai.models.function import FunctionModel

from durable_dbos import DBOSAgent
from examples._payments import PAYMENTS_API_KEY, SHOP, Shop, charge_card, scripted_model, shop_for
from examples._support import choose_model, example_args, run_example


async def main() -> None:
    args = example_args(__doc__ or '')
    agent = Agent(choose_model(args.model, FunctionModel(scripted_model)), name='payments', deps_type=Shop)
    agent.tool(charge_card)
    dbos_agent = DBOSAgent(agent, deps_resolver=SHOP)
    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / 'dbos.sqlite'
        DBOS(config={'name': 'secrets', 'system_database_url': f'sqlite:///{database}', 'log_level': 'WARNING'})
        DBOS.launch()
        try:
            result = await dbos_agent.run('Charge 42.50 EUR.', deps=shop_for('ada'))
            print(result.output)
        finally:
            DBOS.destroy()
        stored = b''.join(file.read_bytes() for file in Path(tmp).glob('dbos.sqlite*'))
        print('the API key is nowhere in the system database' if PAYMENTS_API_KEY.encode() not in stored else 'LEAK')


if __name__ == '__main__':
    run_example(main)
