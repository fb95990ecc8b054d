"""Record the compatibility histories: `uv run python packages/durable-temporal/tests/histories/record.py [impl]`.

`impl` is `reference` (default: `pydantic_ai.durable_exec.temporal`) or `ours` (`durable_temporal`). Each scenario
of `histories.scenarios` runs once on a fresh dev server and its history is written to `<impl>/<scenario>.json`,
which `test_compat_reference.py` replays with the other implementation.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
from pathlib import Path

HISTORIES_DIR = Path(__file__).parent


async def record(impl: str) -> None:
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    from durable_temporal.testing import DEV_SERVER_ARGS, temporal_cli_path, unique_task_queue
    from histories.scenarios import SCENARIOS

    app = importlib.import_module(f'histories.{impl}_app')
    out_dir = HISTORIES_DIR / impl
    out_dir.mkdir(exist_ok=True)
    # Only the recorded implementation's plugin: the test kit would add ours next to it.
    env = await WorkflowEnvironment.start_local(  # pyright: ignore[reportUnknownMemberType]  # SDK: bare generic
        plugins=[app.PydanticAIPlugin()],
        dev_server_existing_path=temporal_cli_path(),
        dev_server_extra_args=list(DEV_SERVER_ARGS),
    )
    async with env:
        worker = Worker(
            env.client,
            task_queue=unique_task_queue('compat'),
            workflows=[app.CompatScenarioWorkflow, app.CompatSwapWorkflow],
        )
        async with worker:
            for scenario in SCENARIOS:
                handle = await env.client.start_workflow(
                    app.CompatScenarioWorkflow.run, scenario, id=f'compat-{scenario}', task_queue=worker.task_queue
                )
                output = await handle.result()
                history = await handle.fetch_history()
                data = json.loads(history.to_json())
                (out_dir / f'{scenario}.json').write_text(json.dumps(data, indent=1) + '\n')
                print(f'{impl}/{scenario}: {output}')
            swap = await env.client.start_workflow(
                app.CompatSwapWorkflow.run, id='compat-swap', task_queue=worker.task_queue
            )
            while await swap.query(app.CompatSwapWorkflow.first) is None:
                await asyncio.sleep(0.05)
            await swap.signal(app.CompatSwapWorkflow.resume)
            print(f'{impl}/swap: {await swap.result()}')
            history = await swap.fetch_history()
            (out_dir / 'swap.json').write_text(json.dumps(json.loads(history.to_json()), indent=1) + '\n')


if __name__ == '__main__':
    # Run as a script: make `histories` importable the way the tests' conftest does.
    sys.path.insert(0, str(HISTORIES_DIR.parent))
    asyncio.run(record(sys.argv[1] if len(sys.argv) > 1 else 'reference'))
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: short-lived Temporal workers can abort in it (SDK bug)
