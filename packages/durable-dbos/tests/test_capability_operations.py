"""Capability operations (pydantic-ai 2.68+'s `@durable_operation`) inside a DBOS workflow, in the capability form.

A method a capability declares durable runs, when called in workflow code, in its own step,
`{agent}__capability__{id}.{operation}` (pydantic-ai 2.78's name for the same agent): a workflow re-executed from after
it takes the recorded result. Outside a workflow, or inside another step, it runs where it is called. pydantic-ai 1.107
(and 2.33) has no such decorator: nothing to test there.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from dbos import DBOS, SetWorkflowID
from pydantic_ai import Agent, RunContext
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models import ModelRequestContext
from pydantic_ai.models.function import AgentInfo, FunctionModel

from durable_dbos import DBOSDurability
from durable_dbos.testing import workflow_step_names_async
from durable_kernel import HAS_DURABLE_OPERATIONS

pytestmark = [
    pytest.mark.anyio,
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
        where = 'step' if DBOS.step_status is not None else 'workflow' if DBOS.workflow_id else 'outside'
        self.ran.append(where)
        return Note(topic, where)

    async def before_run(self, ctx: RunContext[Any]) -> None:
        self.got.append(await self.fetch(ctx, 'weather'))


def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart('done')])


async def test_an_operation_called_in_workflow_code_is_its_own_step_and_not_repeated(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    notes = Notes()
    agent = Agent(FunctionModel(reply), name=agent_name, capabilities=[notes, DBOSDurability()])

    async def run() -> str:
        return (await agent.run('hi')).output

    workflow = DBOS.workflow(name=f'{agent_name}.ops')(run)
    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        assert await workflow() == 'done'
    assert notes.ran == ['step']
    assert notes.got == [Note('weather', 'step')]
    names = await workflow_step_names_async(workflow_id)
    assert names == [f'{agent_name}__capability__notes.fetch', f'{agent_name}__model.request']

    # Re-executed from after the operation's step, the workflow takes its recorded result: it does not run again.
    steps = await DBOS.list_workflow_steps_async(workflow_id)
    forked = await DBOS.fork_workflow_async(workflow_id, steps[0]['function_id'] + 1)
    assert await forked.get_result() == 'done'
    assert notes.ran == ['step']
    assert notes.got[-1] == Note('weather', 'step')

    # Outside a workflow it runs where it is called.
    assert (await agent.run('hi')).output == 'done'
    assert notes.ran == ['step', 'outside']


RetryModelRequest: Any = getattr(importlib.import_module('pydantic_ai.exceptions'), 'RetryModelRequest', Exception)


class Redact(AbstractCapability[Any]):
    """Durable request hooks (pydantic-ai 2.78 runs them in steps): `before_model_request` rewrites the prompt and the
    settings, `after_model_request` the response, and asks once for another attempt when `retry` is set."""

    id = 'redact'

    def __init__(self, *, retry: bool = False) -> None:
        self.ran: list[str] = []
        self.retry = retry

    def _where(self, hook: str, request_context: ModelRequestContext) -> None:
        place = 'step' if DBOS.step_status is not None else 'workflow' if DBOS.workflow_id else 'outside'
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
async def test_request_hooks_declared_durable_are_steps_that_apply_back(
    agent_name: str, dbos_launch: Callable[[], None], retry: bool
) -> None:
    redact = Redact(retry=retry)
    agent = Agent(FunctionModel(echo), name=agent_name, capabilities=[redact, DBOSDurability()])

    async def run() -> str:
        return (await agent.run('my secret plan')).output

    workflow = DBOS.workflow(name=f'{agent_name}.request_ops')(run)
    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        assert await workflow() == 'my [redacted] plan t=0.25!'
    before, request, after = (
        f'{agent_name}__capability__redact.before_model_request',
        f'{agent_name}__model.request',
        f'{agent_name}__capability__redact.after_model_request',
    )
    if retry:
        # The hook's `RetryModelRequest` (its step recorded the error) makes the run attempt the request again.
        assert redact.ran == ['before step:1', 'after step:1', 'after step:2']
        assert await workflow_step_names_async(workflow_id) == [before, request, after, request, after]
    else:
        assert redact.ran == ['before step:1', 'after step:1']
        assert await workflow_step_names_async(workflow_id) == [before, request, after]

    # Re-executed from after the first hook's step, the workflow takes its recorded projection: it does not run again.
    steps = await DBOS.list_workflow_steps_async(workflow_id)
    ran = len(redact.ran)
    forked = await DBOS.fork_workflow_async(workflow_id, steps[0]['function_id'] + 1)
    assert await forked.get_result() == 'my [redacted] plan t=0.25!'
    assert redact.ran[ran:] == ['after step:1']


def other_reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart(f'other in {"step" if DBOS.step_status is not None else "workflow"}')])


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
async def test_a_model_a_request_hook_swaps_in_runs_in_a_model_step(
    agent_name: str, dbos_launch: Callable[[], None], hook: type[AbstractCapability[Any]]
) -> None:
    agent = Agent(FunctionModel(echo), name=agent_name, capabilities=[hook(), DBOSDurability(models={'other': OTHER})])

    async def run() -> str:
        return (await agent.run('hi')).output

    workflow = DBOS.workflow(name=f'{agent_name}.route')(run)
    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        # pydantic-ai 2.68+ runs the hook after the request's model was put in its step: ours puts the new one in too.
        assert await workflow() == 'other in step'
    names = await workflow_step_names_async(workflow_id)
    assert names[-1] == f'{agent_name}__model.request'


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


async def test_a_retry_model_request_naming_a_model_attempts_it_in_a_model_step(
    agent_name: str, dbos_launch: Callable[[], None]
) -> None:
    agent = Agent(
        FunctionModel(echo), name=agent_name, capabilities=[Fallback(), DBOSDurability(models={'other': OTHER})]
    )

    async def run() -> str:
        return (await agent.run('hi')).output

    workflow = DBOS.workflow(name=f'{agent_name}.fallback')(run)
    dbos_launch()
    workflow_id = str(uuid.uuid4())
    with SetWorkflowID(workflow_id):
        assert await workflow() == 'other in step'
    request, after = f'{agent_name}__model.request', f'{agent_name}__capability__fallback.after_model_request'
    assert await workflow_step_names_async(workflow_id) == [request, after, request, after]
