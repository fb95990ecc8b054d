"""Secrets and clients: the flow run holds a customer id; the live API client (and its key) is rebuilt from it.

    uv run python -m examples.prefect.secrets_and_clients [--model openai:gpt-4o]

With `PrefectAgent(deps_resolver=...)` the flow run keeps `reference(deps)` (the customer id) and rebuilds the live
deps with `resolve(...)` on every attempt; the tasks see the live client. The example then searches Prefect's result
storage for the key.
"""

from __future__ import annotations

from pathlib import Path

from prefect.settings import PREFECT_LOCAL_STORAGE_PATH
from pydantic_ai import Agent
from pydantic_ai.models.function import FunctionModel

from durable_prefect import PrefectAgent
from examples._payments import PAYMENTS_API_KEY, SHOP, Shop, charge_card, scripted_model, shop_for
from examples._support import choose_model, example_args, run_example


async def main() -> None:
    args = example_args(__doc__ or '')
    agent = Agent(choose_model(args.model, FunctionModel(scripted_model)), name='payments', deps_type=Shop)
    agent.tool(charge_card)
    prefect_agent = PrefectAgent(agent, deps_resolver=SHOP)
    result = await prefect_agent.run('Charge 42.50 EUR.', deps=shop_for('ada'))
    print(result.output)
    storage = Path(PREFECT_LOCAL_STORAGE_PATH.value())
    stored = b''.join(file.read_bytes() for file in storage.rglob('*') if file.is_file())
    print('the API key is nowhere in the result storage' if PAYMENTS_API_KEY.encode() not in stored else 'LEAK')


if __name__ == '__main__':
    run_example(main)
