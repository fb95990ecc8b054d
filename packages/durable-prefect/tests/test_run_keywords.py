"""pydantic-ai 2.x run keywords: `conversation` and `run_id` reach the flow run, the others are refused with a reason."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from pydantic_ai import Agent
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from durable_kernel import HAS_WORKSPACES, PYDANTIC_AI_2
from durable_prefect import PrefectAgent

from ._helpers import flow_runs_named

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.usefixtures('prefect_server'),
    pytest.mark.skipif(not PYDANTIC_AI_2, reason='these keywords exist on pydantic-ai 2.x only'),
]

# The keywords came one release after another during the 2.x line: 2.33 (the first supported 2.x) has
# `cancellation_token` and `run_id` but not `conversation`, `timeout` or `workspace`. The installed `Agent.run` tells.
_RUN_KEYWORDS = frozenset(inspect.signature(Agent.run).parameters)
_REFUSED_KEYWORDS = tuple(k for k in ('cancellation_token', 'timeout', 'workspace') if k in _RUN_KEYWORDS)
needs_conversation = pytest.mark.skipif(
    'conversation' not in _RUN_KEYWORDS,
    reason='the installed pydantic-ai has no `conversation=` run keyword (1.107 and 2.33 lack it, 2.68+ have it)',
)


def _prompts(messages: list[ModelMessage]) -> list[str]:
    return [
        part.content
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, UserPromptPart) and isinstance(part.content, str)
    ]


class PromptsModel:
    """Answers with every user prompt of the conversation so far, and counts its requests."""

    def __init__(self) -> None:
        self.answers: list[str] = []

    def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        answer = ', '.join(_prompts(messages))
        self.answers.append(answer)
        return ModelResponse(parts=[TextPart(answer)])


def _prefect_agent(name: str, model: PromptsModel) -> Any:
    # `Any`: the type checker sees the entry points of the locked pydantic-ai 1.107, which lack these keywords.
    return PrefectAgent(Agent(FunctionModel(model.respond), name=name))


def _refused_values(tmp_path: Path) -> dict[str, Any]:
    # Only the keywords the installed pydantic-ai has (`_REFUSED_KEYWORDS`): each value's type may be missing otherwise.
    pydantic_ai: Any = importlib.import_module('pydantic_ai')
    values: dict[str, Any] = {'cancellation_token': pydantic_ai.CancellationToken(), 'timeout': 30.0}
    if HAS_WORKSPACES:
        values['workspace'] = importlib.import_module('pydantic_ai.workspaces').LocalWorkspaceBackend(tmp_path)
    return {keyword: values[keyword] for keyword in _REFUSED_KEYWORDS}


async def test_cancellation_token_timeout_and_workspace_are_refused_before_any_flow_run(tmp_path: Path) -> None:
    agent = _prefect_agent('refused-keywords', PromptsModel())
    reasons = {'cancellation_token': 'Cancel the Prefect flow run', 'timeout': 'timeout_seconds', 'workspace': 'tools'}
    for keyword, value in _refused_values(tmp_path).items():
        with pytest.raises(UserError, match=rf'`{keyword}=` cannot be passed to `run\(\)`.*{reasons[keyword]}'):
            await agent.run('go', **{keyword: value})
        with pytest.raises(UserError, match=rf'`{keyword}=` cannot be passed to `run_sync\(\)`'):
            agent.run_sync('go', **{keyword: value})
    assert await flow_runs_named('refused-keywords Run') == []
    assert await flow_runs_named('refused-keywords Sync Run') == []
    if 'workspace' not in _REFUSED_KEYWORDS:
        return  # `override(workspace=...)` came with workspaces (pydantic-ai 2.68)
    workspace = _refused_values(tmp_path)['workspace']
    with (
        pytest.raises(UserError, match=r'`override\(workspace=...\)` cannot be used'),
        agent.override(workspace=workspace),
    ):
        pass  # pragma: no cover


async def test_iter_inside_a_flow_refuses_them_too(tmp_path: Path) -> None:
    agent = _prefect_agent('refused-in-iter', PromptsModel())

    @flow
    async def iterates(keyword: str) -> str:
        try:
            async with agent.iter('go', **{keyword: _refused_values(tmp_path)[keyword]}):
                pass  # pragma: no cover
        except UserError as error:
            return str(error)
        return 'not refused'  # pragma: no cover

    for keyword in _REFUSED_KEYWORDS:
        assert f'`{keyword}=` cannot be passed to `iter()`' in await iterates(keyword)


async def test_run_id_is_carried_into_the_flow_run_with_a_message_history() -> None:
    # `run_id=` without `conversation=`: what 2.33, the first supported 2.x, can give (it has no conversations).
    model = PromptsModel()
    agent = _prefect_agent('carried-run-id', model)
    first = await agent.run('one')
    second = await agent.run('two', message_history=first.all_messages(), run_id='run-two')
    assert second.output == 'one, two'
    assert second.run_id == 'run-two'
    assert [message.run_id for message in second.new_messages()] == ['run-two', 'run-two']
    assert len(await flow_runs_named('carried-run-id Run')) == 2


@needs_conversation
async def test_conversation_and_run_id_are_carried_into_the_flow_run() -> None:
    model = PromptsModel()
    agent = _prefect_agent('carried-keywords', model)
    first = await agent.run('one')
    second = await agent.run('two', conversation=first.conversation, run_id='run-two')
    assert second.output == 'one, two'
    assert second.run_id == 'run-two'
    assert [message.run_id for message in second.new_messages()] == ['run-two', 'run-two']
    assert _prompts(second.conversation.messages) == ['one', 'two']
    assert len(await flow_runs_named('carried-keywords Run')) == 2


@needs_conversation
async def test_the_conversation_keys_the_model_request_of_a_retried_flow_run() -> None:
    model = PromptsModel()
    agent = _prefect_agent('conversation-keys', model)
    alpha = (await agent.run('alpha')).conversation
    beta = (await agent.run('beta')).conversation
    attempts: list[str] = []

    @flow(retries=2, retry_delay_seconds=0)
    async def parent() -> str:
        # Attempt 1 runs in conversation alpha, attempt 2 in beta, attempt 3 in alpha again.
        conversation = [alpha, beta, alpha][len(attempts)]
        output = (await agent.run('go', conversation=conversation, run_id=f'attempt-{len(attempts)}')).output
        attempts.append(output)
        if len(attempts) < 3:
            raise RuntimeError('the caller fails after the agent run')
        return output

    assert await parent() == 'alpha, go'
    assert attempts == ['alpha, go', 'beta, go', 'alpha, go']
    # Another conversation is other work (a new request); the same one is the same work, whatever the run id.
    assert model.answers == ['alpha', 'beta', 'alpha, go', 'beta, go']
