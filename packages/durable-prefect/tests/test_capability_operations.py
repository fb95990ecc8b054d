"""Capability operations (pydantic-ai 2.68+'s `@durable_operation`) inside a Prefect flow, in the capability form.

A method a capability declares durable runs, when called in flow code, in its own task, `Capability: {id}.{operation}`
(pydantic-ai 2.78's name), cached like the other tasks of a run: a retried flow run takes the recorded result. Outside
a flow it runs where it is called. pydantic-ai 1.107 (and 2.33) has no such decorator: nothing to test there.
"""

from __future__ import annotations

import importlib
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from prefect import flow
from prefect.context import FlowRunContext, TaskRunContext
from pydantic_ai import Agent, RunContext
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models import ModelRequestContext
from pydantic_ai.models.function import AgentInfo, FunctionModel

from durable_kernel import HAS_DURABLE_OPERATIONS
from durable_prefect import PrefectDurability

from ._helpers import flow_runs_named, task_runs_of

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.usefixtures('prefect_server'),
    pytest.mark.skipif(
        not HAS_DURABLE_OPERATIONS,
        reason='`pydantic_ai.capabilities.durable_operation` came with pydantic-ai 2.68: the installed one has none',
    ),
]


def _no_decorator(name: str) -> Any:
    # Where pydantic-ai has no `durable_operation` (1.107, 2.33) the module still imports; its tests are skipped.
    def unchanged(function: Any) -> Any:
        return function

    return unchanged


durable_operation: Any = (
    importlib.import_module('pydantic_ai.capabilities').durable_operation if HAS_DURABLE_OPERATIONS else _no_decorator
)


@dataclass
class Note:
    topic: str
    where: str


class Notes(AbstractCapability[Any]):
    """A capability whose `fetch` does I/O (here: says where it ran), declared durable."""

    id = 'notes'

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.got: list[Note] = []

    @durable_operation('fetch')
    async def fetch(self, ctx: RunContext[Any], topic: str) -> Note:
        where = 'task' if TaskRunContext.get() is not None else 'flow' if FlowRunContext.get() else 'outside'
        self.ran.append(where)
        return Note(topic, where)

    async def before_run(self, ctx: RunContext[Any]) -> None:
        self.got.append(await self.fetch(ctx, 'weather'))


def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart('done')])


async def test_an_operation_called_in_flow_code_is_its_own_task_that_a_retried_flow_run_reuses() -> None:
    notes = Notes()
    name = f'ops-{uuid.uuid4().hex[:6]}'
    agent = Agent(FunctionModel(reply, model_name='ops'), name=name, capabilities=[notes, PrefectDurability()])
    attempts: list[Any] = []

    @flow(name=f'{name}-user', retries=1, retry_delay_seconds=0)
    async def user_flow() -> str:
        attempts.append(1)
        result = await agent.run('hi')
        if len(attempts) == 1:
            raise RuntimeError('the flow fails after the agent run')
        return result.output

    assert await user_flow() == 'done'
    assert len(attempts) == 2
    # The second attempt took the operation's result from the first attempt's task.
    assert notes.ran == ['task']
    assert notes.got == [Note('weather', 'task')] * 2
    ids = [run.id for flow_name in (f'{name}-user', f'{name} Run') for run in await flow_runs_named(flow_name)]
    names = [run.name.rsplit('-', 1)[0] for run in await task_runs_of(ids, expected=4)]
    assert [n for n in names if n not in (f'{name}-user', f'{name} Run')] == [
        'Capability: notes.fetch',
        'Model Request: ops',
    ] * 2

    # Outside a flow it runs where it is called.
    assert (await agent.run('hi')).output == 'done'
    assert notes.ran == ['task', 'outside']


RetryModelRequest: Any = getattr(importlib.import_module('pydantic_ai.exceptions'), 'RetryModelRequest', Exception)


class Redact(AbstractCapability[Any]):
    """Durable request hooks (pydantic-ai 2.78 runs them in tasks): `before_model_request` rewrites the prompt and the
    settings, `after_model_request` the response, and asks once for another attempt when `retry` is set."""

    id = 'redact'

    def __init__(self, *, retry: bool = False) -> None:
        self.ran: list[str] = []
        self.retry = retry

    def _where(self, hook: str, request_context: ModelRequestContext) -> None:
        place = 'task' if TaskRunContext.get() is not None else 'flow' if FlowRunContext.get() else 'outside'
        self.ran.append(f'{hook} {place}:{getattr(request_context, "attempt", 1)}')

    @durable_operation('before_model_request')
    async def before_model_request(self, ctx: RunContext[Any], request_context: ModelRequestContext) -> Any:
        self._where('before', request_context)
        request = request_context.messages[-1]
        assert isinstance(request, ModelRequest)
        request_context.messages[-1] = ModelRequest(
            parts=[
                UserPromptPart(str(part.content).replace('secret', '[redacted]'))
                if isinstance(part, UserPromptPart)
                else part
                for part in request.parts
            ]
        )
        request_context.model_settings = {**(request_context.model_settings or {}), 'temperature': 0.25}
        return request_context

    @durable_operation('after_model_request')
    async def after_model_request(
        self, ctx: RunContext[Any], *, request_context: ModelRequestContext, response: ModelResponse
    ) -> ModelResponse:
        self._where('after', request_context)
        if self.retry:
            self.retry = False
            raise RetryModelRequest()
        return ModelResponse(
            parts=[TextPart(f'{part.content}!') for part in response.parts if isinstance(part, TextPart)]
        )


def echo(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    prompt = next(
        part.content
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, UserPromptPart)
    )
    return ModelResponse(parts=[TextPart(f'{prompt} t={(info.model_settings or {}).get("temperature")}')])


@pytest.mark.parametrize('retry', [False, True], ids=['plain', 'retry'])
async def test_request_hooks_declared_durable_are_tasks_that_apply_back(retry: bool) -> None:
    redact = Redact(retry=retry)
    name = f'reqops-{uuid.uuid4().hex[:6]}'
    agent = Agent(FunctionModel(echo, model_name='ops'), name=name, capabilities=[redact, PrefectDurability()])

    @flow(name=f'{name}-user')
    async def user_flow() -> str:
        return (await agent.run('my secret plan')).output

    assert await user_flow() == 'my [redacted] plan t=0.25!'
    before, request, after = (
        'Capability: redact.before_model_request',
        'Model Request: ops',
        'Capability: redact.after_model_request',
    )
    expected = [before, request, after, request, after] if retry else [before, request, after]
    # The hook's `RetryModelRequest` (its task failed with it) makes the run attempt the request again.
    assert redact.ran == (
        ['before task:1', 'after task:1', 'after task:2'] if retry else ['before task:1', 'after task:1']
    )
    ids = [run.id for flow_name in (f'{name}-user', f'{name} Run') for run in await flow_runs_named(flow_name)]
    names = [run.name.rsplit('-', 1)[0] for run in await task_runs_of(ids, expected=len(expected))]
    assert sorted(n for n in names if n not in (f'{name}-user', f'{name} Run')) == sorted(expected)

    # Outside a flow the hooks run where they are called, with the same result.
    redact.ran.clear()
    assert (await agent.run('my secret plan')).output == 'my [redacted] plan t=0.25!'
    assert redact.ran == ['before outside:1', 'after outside:1']


def other_reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart(f'other in {"task" if TaskRunContext.get() is not None else "flow"}')])


OTHER = FunctionModel(other_reply, model_name='other')


class Route(AbstractCapability[Any]):
    """A `before_model_request` that sends the request to another registered model (durable, or not)."""

    id = 'route'

    @durable_operation('before_model_request')
    async def before_model_request(self, ctx: RunContext[Any], request_context: ModelRequestContext) -> Any:
        request_context.model = OTHER
        return request_context


class PlainRoute(AbstractCapability[Any]):
    async def before_model_request(self, ctx: RunContext[Any], request_context: ModelRequestContext) -> Any:
        request_context.model = OTHER
        return request_context


@pytest.mark.parametrize('hook', [Route, PlainRoute], ids=['durable', 'plain'])
async def test_a_model_a_request_hook_swaps_in_runs_in_a_model_task(hook: type[AbstractCapability[Any]]) -> None:
    name = f'route-{uuid.uuid4().hex[:6]}'
    agent = Agent(
        FunctionModel(echo, model_name='ops'),
        name=name,
        capabilities=[hook(), PrefectDurability(models={'other': OTHER})],
    )

    @flow(name=f'{name}-user')
    async def user_flow() -> str:
        return (await agent.run('hi')).output

    # pydantic-ai 2.68+ runs the hook after the request's model was put in its task: ours puts the new one in too.
    assert await user_flow() == 'other in task'


class Fallback(AbstractCapability[Any]):
    """A durable `after_model_request` that asks for another attempt on the registered model `other`."""

    id = 'fallback'

    @durable_operation('after_model_request')
    async def after_model_request(
        self, ctx: RunContext[Any], *, request_context: ModelRequestContext, response: ModelResponse
    ) -> ModelResponse:
        if getattr(request_context, 'attempt', 1) == 1:
            raise RetryModelRequest('other')
        return response


async def test_a_retry_model_request_naming_a_model_attempts_it_in_a_model_task() -> None:
    name = f'fallback-{uuid.uuid4().hex[:6]}'
    agent = Agent(
        FunctionModel(echo, model_name='ops'),
        name=name,
        capabilities=[Fallback(), PrefectDurability(models={'other': OTHER})],
    )

    @flow(name=f'{name}-user')
    async def user_flow() -> str:
        return (await agent.run('hi')).output

    assert await user_flow() == 'other in task'
