"""Compatibility with `pydantic_ai.durable_exec.dbos` (the reference): a workflow it started, and that crashed,
completes on our `DBOSAgent` built with `function_tool_steps=False` (the reference records no tool steps).

Run as a script, this file is the reference app that crashes: `python test_compat_reference.py URL LOG NAME ID`.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, cast

import pytest
from dbos import DBOS, SetWorkflowID
from pydantic_ai.agent import AgentRunResult

from durable_dbos import DBOSAgent
from durable_dbos.testing import dbos_session

if __name__ == '__main__':
    sys.path.insert(0, str(Path(__file__).parent))
    from crash_app import build_plain_agent
else:
    from .crash_app import build_plain_agent


@pytest.mark.parametrize('backend', ['sqlite', 'postgres'], indirect=True)
def test_reference_workflow_recovers_on_our_agent(database_url: str, tmp_path: Path, backend: str) -> None:
    log = tmp_path / 'calls.log'
    name = f'compat_{uuid.uuid4().hex[:6]}'
    workflow_id = str(uuid.uuid4())
    crashed = subprocess.run(
        [sys.executable, __file__, database_url, str(log), name, workflow_id],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == 17, crashed.stderr
    lines = log.read_text().splitlines()
    assert [lines[0], sorted(lines[1:3]), lines[3]] == ['model 1', ['tool add 1 2', 'tool add 3 4'], 'model 2']

    with dbos_session(database_url, reset=False) as launch:
        DBOSAgent(build_plain_agent(name, log, crash=False), function_tool_steps=False)
        launch()
        result = cast(AgentRunResult[str], DBOS.retrieve_workflow(workflow_id).get_result())
        steps = DBOS.list_workflow_steps(workflow_id)

    assert result.output == '3 7 (base 10)'
    # The reference ran the tools as workflow code (its defect: they run again on recovery, which is why ours
    # records them as steps by default); the first model request was a step and was not repeated.
    again = log.read_text().splitlines()[len(lines) :]
    assert [sorted(again[:2]), again[2:]] == [['tool add 1 2', 'tool add 3 4'], ['model 2']]
    assert [step['function_name'] for step in steps] == [f'{name}__model.request'] * 2


def _crash_on_the_reference() -> None:
    from pydantic_ai.durable_exec.dbos import DBOSAgent as ReferenceDBOSAgent

    url, log, name, workflow_id = sys.argv[1:5]
    with dbos_session(url) as launch:
        agent: Any = ReferenceDBOSAgent(build_plain_agent(name, Path(log), crash=True))
        launch()
        with SetWorkflowID(workflow_id):
            asyncio.run(agent.run('add things', deps={'base': 10}))
        raise AssertionError('the model request must have killed the process')


if __name__ == '__main__':
    _crash_on_the_reference()
