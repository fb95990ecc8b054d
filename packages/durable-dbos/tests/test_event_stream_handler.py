"""An event stream handler never takes the agent's tool calls out of workflow code.

pydantic-ai runs a node's tool calls while the handler reads the node's stream; a handler decorated with
`@DBOS.step()` used to read it inside its step, where tool and MCP calls are plain calls: nothing was recorded, a
recovered workflow ran the tools again and a fork failed with `DBOSUnexpectedStepError`.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import cast

import pytest
from dbos import DBOS
from pydantic_ai.agent import AgentRunResult

from durable_dbos.testing import dbos_session

from .handler_app import build_agent, expected_steps

APP = Path(__file__).with_name('handler_app.py')


def lines(log: Path) -> list[str]:
    return log.read_text().splitlines()


@pytest.mark.parametrize('handler', ['step', 'plain', 'none'])
def test_killed_run_recovers_and_forks_without_running_tools_again(
    handler: str, database_url: str, tmp_path: Path
) -> None:
    log = tmp_path / 'calls.log'
    name = f'handler_{handler}_{uuid.uuid4().hex[:6]}'
    workflow_id = str(uuid.uuid4())
    killed = subprocess.run(
        [sys.executable, str(APP), database_url, name, workflow_id, handler, str(log)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    before = lines(log)
    assert before.count('model 2') == 1
    assert sorted(line for line in before if line.startswith('tool')) == ['tool add 1 2', 'tool add 3 4']
    tool_events = ['event function_tool_call'] * 2 + ['event function_tool_result'] * 2
    if handler != 'none':
        # The handler saw the tool calls' events before the process died.
        assert [line for line in before if 'function_tool' in line] == tool_events

    with dbos_session(database_url, reset=False) as launch:
        build_agent(name, handler, crash=False, log=log)
        launch()  # recovers the killed workflow
        result = cast(AgentRunResult[str], DBOS.retrieve_workflow(workflow_id).get_result())
        steps = DBOS.list_workflow_steps(workflow_id)
        after_recovery = lines(log)

        # A fork from the step after the last tool step replays everything up to it from the records.
        last_tool = max(s['function_id'] for s in steps if '.call_tool.' in s['function_name'])
        forked = DBOS.fork_workflow(workflow_id, last_tool + 1)
        forked_result = cast(AgentRunResult[str], forked.get_result())
        forked_steps = DBOS.list_workflow_steps(forked.workflow_id)
        after_fork = lines(log)

    assert result.output == forked_result.output == '3 7'
    recovered, refork = after_recovery[len(before) :], after_fork[len(after_recovery) :]
    # Neither the recovery nor the fork ran a tool again: their results were recorded as steps.
    assert [line for line in recovered + refork if line.startswith('tool')] == []
    assert [s['function_name'] for s in steps] == expected_steps(name, handler)
    assert [s['function_name'] for s in forked_steps] == expected_steps(name, handler)
    assert [recovered.count('model 2'), refork.count('model 2')] == [1, 1]
    assert 'model 1' not in recovered + refork
    if handler == 'step':
        # Each event the handler was given in workflow code is a recorded step: not handled again.
        assert [line for line in recovered if 'function_tool' in line] == []
        assert [line for line in refork if 'function_tool' in line] == tool_events[2:]
    elif handler == 'plain':
        # A plain handler is workflow code: a recovered workflow hands it the replayed events again.
        assert [line for line in recovered if 'function_tool' in line] == tool_events
        assert [line for line in refork if 'function_tool' in line] == tool_events
