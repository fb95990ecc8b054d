"""Golden Temporal histories of the conformance scenarios: record them, and replay them on the current code."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer, WorkflowReplayResult

from durable_temporal import PydanticAIPlugin

from .scenarios import SCENARIOS, RunInput
from .temporal_engine import WORKFLOWS, WorkflowReply, harness_passthrough_runner

__all__ = ('HISTORIES_DIR', 'history_files', 'record_histories', 'replay_history')

HISTORIES_DIR = Path(__file__).resolve().parent.parent / 'histories'


def history_files() -> list[Path]:
    """The committed histories, one per scenario run (`<scenario>.json`, `<scenario>.follow_up.json`)."""
    return sorted(HISTORIES_DIR.glob('*.json'))


async def _record_one(client: Client, task_queue: str, name: str, run_input: RunInput, path: Path) -> WorkflowReply:
    handle = await client.start_workflow(
        f'conformance_{name}',
        run_input,
        id=f'golden-{path.stem}-{uuid.uuid4().hex[:8]}',
        task_queue=task_queue,
        result_type=WorkflowReply,
    )
    reply = await handle.result()
    history = await handle.fetch_history()
    # Re-indent for readable diffs; `WorkflowHistory.from_json` reads it back.
    path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + '\n', encoding='utf-8')
    return reply


async def record_histories(
    client: Client, task_queue: str, names: Sequence[str] = (), directory: Path = HISTORIES_DIR
) -> list[Path]:
    """Run the scenarios (all, or those in `names`) on a worker polling `task_queue`; write their histories."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, scenario in SCENARIOS.items():
        if names and name not in names:
            continue
        path = directory / f'{name}.json'
        reply = await _record_one(client, task_queue, name, scenario.first, path)
        written.append(path)
        if scenario.follow_up is not None:
            follow_up_path = directory / f'{name}.follow_up.json'
            await _record_one(client, task_queue, name, scenario.follow_up(reply.messages), follow_up_path)
            written.append(follow_up_path)
    return written


async def replay_history(path: Path) -> WorkflowReplayResult:
    """Replay one recorded history on the current workflows and agents (raises on non-determinism)."""
    data: Any = json.loads(path.read_text(encoding='utf-8'))
    history = WorkflowHistory.from_json(f'golden-{path.stem}', data)
    replayer = Replayer(
        workflows=list(WORKFLOWS.values()), plugins=[PydanticAIPlugin()], workflow_runner=harness_passthrough_runner()
    )
    return await replayer.replay_workflow(history)
