"""Process of the exit test: `python exit_program.py <server address>` runs one agent workflow, prints it, exits.

It is pydantic-ai's Temporal documentation example with `LogfirePlugin` (Logfire configured to send nothing) and a
module passed through the workflow sandbox, whose tool activity logs with `logfire.info`. The exit code is what the
test checks: the program used to abort at interpreter exit now and then (see `durable_temporal._exit_barrier`).
"""

from __future__ import annotations

import asyncio
import sys
import uuid

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    import logfire

    # A compiled extension module passed through the sandbox, in the place of pydantic-ai's docs' `pandas` (neither
    # pandas nor numpy is a dependency here; the abort happened with no such import too).
    import pydantic_core  # noqa: F401  # pyright: ignore[reportUnusedImport]
    from pydantic_ai import Agent
    from pydantic_ai.models.test import TestModel

    from durable_temporal import LogfirePlugin, PydanticAIPlugin, PydanticAIWorkflow, TemporalAgent

agent = Agent(TestModel(), instructions="You're an expert in geography.", name='exit_geography')


@agent.tool_plain
async def capital(country: str) -> str:
    """The capital of `country`."""
    logfire.info('looking up {country}', country=country)
    return 'Mexico City'


temporal_agent = TemporalAgent(agent)


@workflow.defn
class ExitGeographyWorkflow(PydanticAIWorkflow):
    __pydantic_ai_agents__ = [temporal_agent]

    @workflow.run
    async def run(self, prompt: str) -> str:
        return (await temporal_agent.run(prompt)).output


def setup_logfire() -> logfire.Logfire:
    instance = logfire.configure(send_to_logfire=False, console=False)
    # What `instance.instrument_pydantic_ai()` does, but also with the oldest Logfire the `logfire` extra allows
    # (3.14, whose `instrument_pydantic_ai` passes a keyword pydantic-ai 1.107 no longer takes).
    Agent.instrument_all()
    return instance


async def main(address: str) -> None:
    client = await Client.connect(address, plugins=[PydanticAIPlugin(), LogfirePlugin(setup_logfire)])
    task_queue = f'exit-{uuid.uuid4().hex}'
    async with Worker(client, task_queue=task_queue, workflows=[ExitGeographyWorkflow]):
        output = await client.execute_workflow(
            ExitGeographyWorkflow.run, 'What is the capital of Mexico?', id=task_queue, task_queue=task_queue
        )
    print(output, flush=True)


if __name__ == '__main__':
    asyncio.run(main(sys.argv[1]))
