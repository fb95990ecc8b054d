from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import cast

from dbos import DBOS
from pydantic_ai.agent import AgentRunResult

from durable_dbos.testing import dbos_session

from .conftest import both_backends
from .crash_app import build_agent

APP = Path(__file__).with_name('crash_app.py')


@both_backends
def test_killed_in_second_model_request_resumes_without_repeating_work(
    database_url: str, tmp_path: Path, backend: str
) -> None:
    assert _crash_and_recover(database_url, tmp_path, 'run').endswith('.run')


def test_run_sync_killed_in_second_model_request_resumes(database_url: str, tmp_path: Path) -> None:
    assert _crash_and_recover(database_url, tmp_path, 'run_sync').endswith('.run_sync')


def _crash_and_recover(database_url: str, tmp_path: Path, entry_point: str) -> str:
    """Crash the agent's workflow in a subprocess, recover it here, check what ran; return the workflow's name."""
    log = tmp_path / 'calls.log'
    name = f'crash_{uuid.uuid4().hex[:6]}'
    workflow_id = str(uuid.uuid4())

    crashed = subprocess.run(
        [sys.executable, str(APP), database_url, str(log), name, workflow_id, entry_point],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == 17, crashed.stderr
    lines = log.read_text().splitlines()
    # The two tool calls run in parallel: their side effects may land in either order.
    assert [lines[0], sorted(lines[1:3]), lines[3]] == ['model 1', ['tool add 1 2', 'tool add 3 4'], 'model 2']

    # This process is the "new process": launching DBOS on the same database recovers the pending workflow.
    with dbos_session(database_url, reset=False) as launch:
        build_agent(name, log, crash=False)
        launch()
        result = cast(AgentRunResult[str], DBOS.retrieve_workflow(workflow_id).get_result())
        status = DBOS.get_workflow_status(workflow_id)
        steps = DBOS.list_workflow_steps(workflow_id)
        if entry_point == 'run_sync':
            # `{name}.run_sync` ran `{name}.run` as its child: the agent's steps are the child's.
            assert [step['function_name'] for step in steps] == [f'{name}.run', 'DBOS.getResult']
            child_id = steps[0]['child_workflow_id']
            assert child_id is not None
            steps = DBOS.list_workflow_steps(child_id)

    assert result.output == '3 7 (base 10)'  # deps came back from the checkpointed inputs
    # The first model request and both tool calls were recorded as steps: recovery did not repeat them.
    assert log.read_text().splitlines() == [*lines, 'model 2']
    tool_step = f'{name}__toolset__<agent>.call_tool.add'
    # The step order is the tool calls' order in the model response, on the first execution and on recovery.
    assert [(step['function_name'], getattr(step['output'], 'result', None)) for step in steps] == [
        (f'{name}__model.request', None),
        (tool_step, 3),
        (tool_step, 7),
        (f'{name}__model.request', None),
    ]
    assert status is not None
    return status.name
