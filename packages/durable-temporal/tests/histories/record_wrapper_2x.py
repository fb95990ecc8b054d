"""Record `reference_wrapper_2x/migration.json`: a whole run of pydantic-ai 2.x's own `TemporalAgent` (the deprecated
wrapper), which `test_compat_migration.py` replays on our `TemporalDurability`.

Run it with a Python whose pydantic-ai is 2.x and has `pydantic_ai.durable_exec.temporal`, and the `temporal` CLI of
this project's venv (the committed file was recorded with pydantic-ai-slim 2.33.0 and temporalio 1.30, the reference
env of `../shared/tools/upstream_suites`):

```bash
PYTHONPATH=packages/durable-temporal/tests /path/to/reference/bin/python \\
    packages/durable-temporal/tests/histories/record_wrapper_2x.py .venv/bin/temporal
```

The agent and workflow are those of pydantic-ai's own migration test at v2.33.0
(`test_temporal_agent_history_replays_after_migrating_to_durability`), with a second tool.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
import warnings
from collections.abc import AsyncIterable
from pathlib import Path
from typing import Any

from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import AgentStreamEvent
from pydantic_ai.models.test import TestModel
from temporalio import workflow
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

OUT = Path(__file__).parent / 'reference_wrapper_2x' / 'migration.json'


async def handle_events(ctx: RunContext[None], stream: AsyncIterable[AgentStreamEvent]) -> None:
    async for _ in stream:
        pass


async def migration_tool() -> str:
    return 'tool result'


async def second_tool() -> str:
    return 'second result'


# The reference, by name: the wrapper is deprecated on 2.x.
_reference: Any = importlib.import_module('pydantic_ai.durable_exec.temporal')
with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    agent: Any = _reference.TemporalAgent(
        Agent(
            TestModel(custom_output_text='migrated'),
            name='temporal_agent_migration',
            deps_type=type(None),
            tools=[migration_tool, second_tool],
        ),
        event_stream_handler=handle_events,
    )


@workflow.defn(name='TemporalAgentMigrationWorkflow')
class WrapperWorkflow:
    @workflow.run
    async def run(self, prompt: str) -> str:
        return (await agent.run(prompt)).output


async def record(temporal_cli: str) -> None:
    env = await WorkflowEnvironment.start_local(  # pyright: ignore[reportUnknownMemberType]  # SDK: bare generic
        data_converter=pydantic_data_converter,
        dev_server_existing_path=temporal_cli,
        dev_server_extra_args=['--dynamic-config-value', 'frontend.enableServerVersionCheck=false'],
    )
    async with (
        env,
        Worker(
            env.client,
            task_queue='migration',
            workflows=[WrapperWorkflow],
            activities=agent.temporal_activities,
            workflow_runner=UnsandboxedWorkflowRunner(),
        ),
    ):
        handle = await env.client.start_workflow(
            WrapperWorkflow.run, 'hello', id='temporal-agent-migration', task_queue='migration'
        )
        print(await handle.result())
        history = await handle.fetch_history()
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(json.loads(history.to_json()), indent=1) + '\n')


if __name__ == '__main__':
    asyncio.run(record(sys.argv[1]))
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: short-lived Temporal workers can abort in it (SDK bug)
