"""Production: serve the agent as a Prefect deployment; each triggered run is a flow run with cached tasks.

    PREFECT_API_URL=http://prefect.internal:4200/api uv run python -m examples.prefect.production
    uv run python -m examples.prefect.production --once   # run the flow once, here, then exit

`serve()` registers the deployment `answer-question/assistant` and runs each flow run triggered for it (from the UI,
an automation, a schedule or a client) in a subprocess that loads this file. Clients trigger runs with:

    from prefect.deployments import run_deployment
    flow_run = await run_deployment('answer-question/assistant', parameters={'question': '...'})

A flow run that fails is retried (`retries=2`): its completed model and tool tasks come from the cache.
"""

from __future__ import annotations

import functools
import os

from prefect import flow
from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel

from durable_prefect import PrefectAgent
from examples._support import choose_model, example_args

MODEL_ENV = 'EXAMPLE_MODEL'
"""The real model to use (set from `--model`): an environment variable reaches the subprocesses of flow runs."""


@functools.cache
def assistant() -> PrefectAgent[None, str]:
    """The durable agent, built once per process."""
    fake = TestModel(custom_output_text='Durable workers: runs survive restarts.')
    return PrefectAgent(Agent(choose_model(os.environ.get(MODEL_ENV), fake), name='assistant'))


@flow(name='answer-question', retries=2, retry_delay_seconds=5)
async def answer_question(question: str) -> str:
    """Answer one question with the agent (its run is a subflow; its requests are cached tasks)."""
    result = await assistant().run(question)
    return result.output


def main() -> None:
    args = example_args(__doc__ or '', once=True)
    if args.model:
        os.environ[MODEL_ENV] = args.model
    if args.once:
        import asyncio

        print(asyncio.run(answer_question('Why run agents on workers?')))
        return
    answer_question.serve(name='assistant')  # blocks, running triggered flow runs, until Ctrl-C / SIGTERM


if __name__ == '__main__':
    main()
