"""Record the golden Temporal histories of the conformance scenarios into `tests-integration/histories/`.

    uv run python tests-integration/record_histories.py [scenario ...]

Re-record after a deliberate change of what the workflows schedule (and say so in the change log: histories recorded
by the old version will no longer replay, so running workflows must be drained or versioned).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from harness.histories import HISTORIES_DIR, record_histories  # noqa: E402
from harness.temporal_engine import WORKFLOWS, harness_passthrough_runner  # noqa: E402

from durable_temporal.testing import agent_worker, dev_server  # noqa: E402


async def _main() -> None:
    runner = harness_passthrough_runner()
    async with (
        dev_server() as env,
        agent_worker(env.client, workflows=list(WORKFLOWS.values()), workflow_runner=runner) as worker,
    ):
        written = await record_histories(env.client, worker.task_queue, sys.argv[1:])
    for path in written:
        print(path.relative_to(HISTORIES_DIR.parent.parent))


if __name__ == '__main__':
    anyio.run(_main)
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown, which SDK threads can abort (see ENGINES.md)
