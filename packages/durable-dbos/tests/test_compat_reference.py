"""Compatibility with `pydantic_ai.durable_exec.dbos` (the reference), both ways: a workflow that one wrapper started
and that crashed in its second model request is recovered by the other, with only the wrapper changed.

Each recovered workflow keeps the step layout it recorded: the reference runs tool calls as workflow code (so it
re-runs them after a crash), ours records them as steps by default. Run as a script, this file is the app that
crashes: `python test_compat_reference.py URL LOG NAME ID reference|ours on|off fixed|computed`.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Literal, cast

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

Wrapper = Literal['reference', 'ours']
FIRST_CALLS = ['model 1', ['tool add 1 2', 'tool add 3 4'], 'model 2']
OUTPUT = '3 7 (base 10)'


def _crash(
    database_url: str,
    tmp_path: Path,
    wrapper: Wrapper,
    *,
    tool_steps: bool = True,
    app_version: Literal['fixed', 'computed'] = 'fixed',
) -> tuple[str, str, Path, int]:
    """Start the workflow on `wrapper` in a subprocess that dies in model request 2; (name, workflow id, log, lines)."""
    log = tmp_path / 'calls.log'
    name = f'compat_{uuid.uuid4().hex[:6]}'
    workflow_id = str(uuid.uuid4())
    flag = 'on' if tool_steps else 'off'
    crashed = subprocess.run(
        [sys.executable, __file__, database_url, str(log), name, workflow_id, wrapper, flag, app_version],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert crashed.returncode == 17, crashed.stderr
    lines = log.read_text().splitlines()
    assert [lines[0], sorted(lines[1:3]), lines[3]] == FIRST_CALLS
    return name, workflow_id, log, len(lines)


def _calls_after(log: Path, crashed_lines: int) -> list[str]:
    again = log.read_text().splitlines()[crashed_lines:]
    return [
        *sorted(line for line in again if line.startswith('tool')),
        *(line for line in again if line[:5] == 'model'),
    ]


def _step_names(workflow_id: str) -> list[str]:
    return [step['function_name'] for step in DBOS.list_workflow_steps(workflow_id, load_output=False)]


@pytest.mark.parametrize('backend', ['sqlite', 'postgres'], indirect=True)
@pytest.mark.parametrize('tool_steps', [True, False], ids=['tool_steps', 'no_tool_steps'])
def test_reference_workflow_recovers_on_our_agent_whatever_function_tool_steps_says(
    database_url: str, tmp_path: Path, backend: str, tool_steps: bool
) -> None:
    name, workflow_id, log, crashed_lines = _crash(database_url, tmp_path, 'reference')

    with dbos_session(database_url, reset=False) as launch:
        DBOSAgent(build_plain_agent(name, log, crash=False), function_tool_steps=tool_steps)
        launch()
        result = cast(AgentRunResult[str], DBOS.retrieve_workflow(workflow_id).get_result())
        steps = _step_names(workflow_id)

    assert result.output == OUTPUT
    # The reference ran the tools as workflow code (its defect: they run again on recovery); the first model request
    # was a step and is not repeated. Its record ends before any tool call, so the rest is new work and follows the
    # agent's setting (a record reaching past a tool call keeps its layout: see tests-integration/test_upgrade.py).
    assert _calls_after(log, crashed_lines) == ['tool add 1 2', 'tool add 3 4', 'model 2']
    tool_step = f'{name}__toolset__<agent>.call_tool.add'
    tools = [tool_step, tool_step] if tool_steps else []
    assert steps == [f'{name}__model.request', *tools, f'{name}__model.request']


def test_workflow_recorded_with_tool_steps_keeps_them_when_recovered_with_function_tool_steps_off(
    database_url: str, tmp_path: Path
) -> None:
    name, workflow_id, log, crashed_lines = _crash(database_url, tmp_path, 'ours')

    with dbos_session(database_url, reset=False) as launch:
        DBOSAgent(build_plain_agent(name, log, crash=False), function_tool_steps=False)
        launch()
        result = cast(AgentRunResult[str], DBOS.retrieve_workflow(workflow_id).get_result())
        steps = _step_names(workflow_id)

    assert result.output == OUTPUT
    assert _calls_after(log, crashed_lines) == ['model 2']  # the recorded tool steps are replayed, not re-run
    tool_step = f'{name}__toolset__<agent>.call_tool.add'
    assert steps == [f'{name}__model.request', tool_step, tool_step, f'{name}__model.request']


def test_pending_workflow_of_another_application_version_is_named_at_launch_with_the_setting_that_recovers_it(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The reference's process computes its application version from its workflows' source, as DBOS does by default.
    name, workflow_id, log, crashed_lines = _crash(database_url, tmp_path, 'reference', app_version='computed')

    with caplog.at_level(logging.WARNING, logger='durable_dbos'), dbos_session(database_url, reset=False) as launch:
        DBOSAgent(build_plain_agent(name, log, crash=False))
        launch()
        recorded_version = DBOS.get_workflow_status(workflow_id)
        assert recorded_version is not None
        assert recorded_version.app_version is not None
        warning = _wait_for_warning(caplog, workflow_id)
        status = DBOS.get_workflow_status(workflow_id)
    assert status is not None
    assert status.status == 'PENDING'
    version = recorded_version.app_version
    assert version != 'durable-dbos-test'
    assert f'workflow(s) of DBOS agent {name!r} were started under application version {version!r}' in warning
    assert f"`DBOS(config={{..., 'application_version': {version!r}}})`" in warning
    assert _calls_after(log, crashed_lines) == []

    # The one setting the warning names recovers it, on our agent at its default (the same one: DBOS keeps its
    # registrations across launches in a process).
    with dbos_session(database_url, reset=False, config={'application_version': version}) as launch:
        launch()
        result = cast(AgentRunResult[str], DBOS.retrieve_workflow(workflow_id).get_result())
    assert result.output == OUTPUT
    assert _calls_after(log, crashed_lines) == ['tool add 1 2', 'tool add 3 4', 'model 2']


def _wait_for_warning(caplog: pytest.LogCaptureFixture, workflow_id: str) -> str:
    # The check runs on a DBOS background thread right after launch: generous on a loaded machine.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for record in caplog.records:
            if record.name == 'durable_dbos' and workflow_id in record.getMessage():
                return record.getMessage()
        time.sleep(0.05)
    raise AssertionError(f'no warning naming {workflow_id}: {[r.getMessage() for r in caplog.records]}')


@pytest.mark.filterwarnings('ignore::pydantic_ai._warnings.PydanticAIDeprecationWarning')
def test_rollback_our_workflow_without_tool_steps_finishes_on_the_reference(database_url: str, tmp_path: Path) -> None:
    from pydantic_ai.durable_exec.dbos import DBOSAgent as ReferenceDBOSAgent

    name, workflow_id, log, crashed_lines = _crash(database_url, tmp_path, 'ours', tool_steps=False)

    with dbos_session(database_url, reset=False) as launch:
        ReferenceDBOSAgent(build_plain_agent(name, log, crash=False))
        launch()
        result = cast(AgentRunResult[str], DBOS.retrieve_workflow(workflow_id).get_result())

    assert result.output == OUTPUT
    assert _calls_after(log, crashed_lines) == ['tool add 1 2', 'tool add 3 4', 'model 2']  # as on ours with `off`


@pytest.mark.filterwarnings('ignore::pydantic_ai._warnings.PydanticAIDeprecationWarning')
def test_rollback_our_workflow_with_tool_steps_fails_on_the_reference(database_url: str, tmp_path: Path) -> None:
    # What the docs tell users to avoid (drain such workflows before switching back): the reference runs the tools
    # as workflow code again, then finds our tool step where it expects its model request, and fails the workflow.
    from dbos import error as dbos_errors
    from pydantic_ai.durable_exec.dbos import DBOSAgent as ReferenceDBOSAgent

    name, workflow_id, log, crashed_lines = _crash(database_url, tmp_path, 'ours')

    with dbos_session(database_url, reset=False) as launch:
        ReferenceDBOSAgent(build_plain_agent(name, log, crash=False))
        launch()
        with pytest.raises(dbos_errors.DBOSUnexpectedStepError, match=r'call_tool\.add'):
            DBOS.retrieve_workflow(workflow_id).get_result()
        status = DBOS.get_workflow_status(workflow_id)

    assert status is not None
    assert status.status == 'ERROR'
    assert _calls_after(log, crashed_lines) == ['tool add 1 2', 'tool add 3 4']


def _crash_on(wrapper: Wrapper) -> None:
    url, log, name, workflow_id, _, tool_steps, app_version = sys.argv[1:8]
    config: Any = {'application_version': None} if app_version == 'computed' else None
    with dbos_session(url, config=config) as launch:
        plain = build_plain_agent(name, Path(log), crash=True)
        if wrapper == 'reference':
            from pydantic_ai.durable_exec.dbos import DBOSAgent as ReferenceDBOSAgent

            agent: Any = ReferenceDBOSAgent(plain)
        else:
            agent = DBOSAgent(plain, function_tool_steps=tool_steps == 'on')
        launch()
        with SetWorkflowID(workflow_id):
            asyncio.run(agent.run('add things', deps={'base': 10}))
        raise AssertionError('the model request must have killed the process')


if __name__ == '__main__':
    _crash_on(cast(Wrapper, sys.argv[5]))
