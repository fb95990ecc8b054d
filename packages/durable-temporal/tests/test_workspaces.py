"""pydantic-ai 2.68+'s workspaces in a workflow: workspace I/O in workflow code is refused, in both forms.

A workspace's calls from workflow code (instructions, an output function) would run outside any activity: unrecorded,
again on every replay, and (for a `LocalWorkspace`) refused obscurely by the sandbox. Ours refuse them with a
`UserError` that says what to do instead, whether the workspace comes from a `LocalWorkspace` capability or
(capability form) `run(workspace=...)`; the wrapper's `run()` refuses `workspace=` as before. A tool's activity does not
get the run's workspace (pydantic-ai's run context does not carry it across): it fails with pydantic-ai's own
`UserError`, as before.
"""

from __future__ import annotations

import importlib
import uuid
from typing import Any

import pytest
from core_helpers import WORKFLOW_TIMEOUT
from pydantic_ai.exceptions import UserError
from temporalio import workflow
from temporalio.client import Client

from durable_temporal import AgentPlugin
from durable_temporal.testing import agent_worker

with workflow.unsafe.imports_passed_through():
    from workspace_agent import AGENTS, HAS_WORKSPACES, WORKSPACE_DIR

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not HAS_WORKSPACES, reason='workspaces (`pydantic_ai.workspaces`) exist from pydantic-ai 2.68'),
]

REFUSED = "The run's workspace (`ctx.workspace`) cannot be used in the code of a Temporal workflow"


@workflow.defn
class WorkspaceWorkflow:
    @workflow.run
    async def run(self, form: str, case: str) -> str:
        agent = AGENTS[form]
        kwargs: dict[str, Any] = {}
        prompt = case
        if case.startswith('keyword:'):
            prompt = case.removeprefix('keyword:')
            with workflow.unsafe.sandbox_unrestricted():  # building a backend touches the filesystem
                kwargs['workspace'] = importlib.import_module('pydantic_ai.workspaces').LocalWorkspaceBackend(
                    str(WORKSPACE_DIR)
                )
        try:
            result = await agent.run(prompt, **kwargs)
        except UserError as error:
            return f'UserError: {error}'
        except Exception as error:
            # An activity's failure: its cause is the tool's error.
            cause = error.__cause__
            while cause is not None and cause.__cause__ is not None:
                cause = cause.__cause__
            return f'{type(error).__name__}: {cause}'
        return f'ok: {result.output}'


async def _outcome(client: Client, task_queue: str, form: str, case: str) -> str:
    plugins = [AgentPlugin(AGENTS['capability']), AgentPlugin(AGENTS['capability_plain'])]
    async with agent_worker(
        client, workflows=[WorkspaceWorkflow], agents=[AGENTS['wrapper']], task_queue=task_queue, plugins=plugins
    ):
        return await client.execute_workflow(
            WorkspaceWorkflow.run,
            args=[form, case],
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )


@pytest.mark.parametrize('form', ['capability', 'wrapper'])
@pytest.mark.parametrize('case', ['hook', 'output', 'keyword:hook', 'keyword:output'])
async def test_workspace_calls_in_workflow_code_are_refused(client: Client, task_queue: str, form: str, case: str):
    if case.startswith('keyword:'):
        # The capability form takes `run(workspace=...)`; the wrapper refuses the keyword itself (test_run_keywords).
        form = 'capability_plain' if form == 'capability' else form
    outcome = await _outcome(client, task_queue, form, case)
    if form == 'wrapper' and case.startswith('keyword:'):
        assert outcome.startswith('UserError: `workspace=` cannot be passed to `run()` inside a Temporal workflow')
        return
    assert outcome.startswith(f'UserError: {REFUSED}')
    assert 'Workspaces are not durable in this release' in outcome
    assert 'The workspace does not cross into activities either' in outcome


@pytest.mark.parametrize('form', ['capability', 'wrapper'])
async def test_a_run_without_workspace_calls_is_unchanged(client: Client, task_queue: str, form: str):
    assert await _outcome(client, task_queue, form, 'none') == 'ok: done'


@pytest.mark.parametrize('form', ['capability', 'wrapper'])
async def test_a_tool_activity_has_no_workspace(client: Client, task_queue: str, form: str):
    outcome = await _outcome(client, task_queue, form, 'tool')
    assert outcome.startswith('ActivityError: UserError: `TemporalRunContext.workspace` is not available')


async def test_outside_a_workflow_the_workspace_works():
    assert (await AGENTS['capability'].run('output')).output == 'done: from the workspace'
