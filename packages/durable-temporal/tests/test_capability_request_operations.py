"""Capability operations on a model request's `ModelRequestContext` (pydantic-ai 2.68+), inside a workflow.

A capability hook such as `before_model_request` declared durable runs, when a request in workflow code calls it, in
its own activity `agent__{name}__capability__{id}__{operation}`, as pydantic-ai 2.78 runs it: the request context
crosses as data (its projection: messages, settings, parameters, the model by its key, streaming, attempt), the
activity rebuilds it around the model, and what the hook returns comes back and is applied to the workflow's request.
A `RetryModelRequest` the hook raises crosses back too, and the run attempts the request again. Histories of
pydantic-ai 2.78's own `TemporalDurability` replay on ours, and ours on it.
"""

from __future__ import annotations

import importlib
import uuid
from typing import Any

import pytest
from core_helpers import WORKFLOW_TIMEOUT, activity_names
from pydantic_ai import Agent, RunContext
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models import ModelRequestContext
from pydantic_ai.models.function import AgentInfo, FunctionModel
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker

from durable_kernel import HAS_DURABLE_OPERATIONS
from durable_temporal import AgentPlugin, PydanticAIPlugin, TemporalAgent, TemporalDurability
from durable_temporal.testing import agent_worker

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
RetryModelRequest: Any = getattr(importlib.import_module('pydantic_ai.exceptions'), 'RetryModelRequest', Exception)

WHERE: list[str] = []
"""Where each hook ran, with the attempt it saw: `'activity:1'`, `'workflow:1'`, ... (the worker's copy of this module
for activities)."""


def _where(request_context: ModelRequestContext) -> str:
    place = 'activity' if activity.in_activity() else 'workflow' if workflow.in_workflow() else 'outside'
    return f'{place}:{getattr(request_context, "attempt", 1)}'


class Redact(AbstractCapability[Any]):
    """Durable request hooks: `before_model_request` rewrites the prompt and settings (I/O in real life: a redaction
    service), `after_model_request` rewrites the response, `retry_once` asks for one more attempt."""

    id = 'redact'

    @durable_operation('before_model_request')
    async def before_model_request(self, ctx: RunContext[Any], request_context: ModelRequestContext) -> Any:
        WHERE.append(f'before {_where(request_context)}')
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
        WHERE.append(f'after {_where(request_context)}')
        if getattr(request_context, 'attempt', 1) == 1 and RETRIES:
            RETRIES.pop()
            raise RetryModelRequest()
        return ModelResponse(
            parts=[TextPart(f'{part.content}!') for part in response.parts if isinstance(part, TextPart)]
        )


RETRIES: list[bool] = []
"""Set to `[True]` to have `after_model_request` ask for another attempt at the first request (the worker's copy)."""


def echo(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    # What the model got: the redacted prompt and the hook's settings.
    prompt = next(
        part.content
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, UserPromptPart)
    )
    temperature = (info.model_settings or {}).get('temperature')
    return ModelResponse(parts=[TextPart(f'{prompt} t={temperature}')])


request_ops_agent = Agent(FunctionModel(echo), name='request_ops', capabilities=[Redact(), TemporalDurability()])


@workflow.defn
class RequestOpsWorkflow:
    @workflow.run
    async def run(self) -> str:
        return (await request_ops_agent.run('my secret plan')).output


REFERENCE_AGENTS: dict[str, Any] = {}
"""pydantic-ai 2.78's own capability-form agent of the same name, built by the test (run unsandboxed)."""


@workflow.defn(name='RequestOpsWorkflow')
class ReferenceRequestOpsWorkflow:
    @workflow.run
    async def run(self) -> str:
        return (await REFERENCE_AGENTS['agent'].run('my secret plan')).output


async def _run_ours(client: Client, task_queue: str) -> Any:
    WHERE.clear()
    async with agent_worker(
        client, workflows=[RequestOpsWorkflow], plugins=[AgentPlugin(request_ops_agent)], task_queue=task_queue
    ):
        handle = await client.start_workflow(
            RequestOpsWorkflow.run, id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
        )
        await handle.result()
    return handle


def _our_replayer() -> Replayer:
    return Replayer(
        workflows=[RequestOpsWorkflow],
        plugins=[PydanticAIPlugin(), AgentPlugin(request_ops_agent)],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )


async def test_request_hooks_declared_durable_run_in_their_activities_and_apply_back(
    client: Client, task_queue: str
) -> None:
    handle = await _run_ours(client, task_queue)
    # The model got what the hook made of the request in its activity; the response is what the other hook made.
    assert await handle.result() == 'my [redacted] plan t=0.25!'
    assert WHERE == ['before activity:1', 'after activity:1']
    assert await activity_names(client, handle) == [
        'agent__request_ops__capability__redact__before_model_request',
        'agent__request_ops__model_request',
        'agent__request_ops__capability__redact__after_model_request',
    ]
    # Replayed, the workflow takes the recorded results: no hook runs again.
    WHERE.clear()
    await _our_replayer().replay_workflow(await handle.fetch_history())
    assert WHERE == []

    # Outside a workflow the hooks run where they are called, with the same result.
    WHERE.clear()
    assert (await request_ops_agent.run('my secret plan')).output == 'my [redacted] plan t=0.25!'
    assert WHERE == ['before outside:1', 'after outside:1']


async def test_a_retry_model_request_from_a_hooks_activity_makes_the_run_attempt_again(
    client: Client, task_queue: str
) -> None:
    RETRIES[:] = [True]
    try:
        handle = await _run_ours(client, task_queue)
    finally:
        RETRIES.clear()
    assert await handle.result() == 'my [redacted] plan t=0.25!'
    # The second attempt's hook sees `attempt` 2 (it crossed in the projection); the failed activity ran once (its
    # failure is the hook's answer, not retried).
    assert WHERE == ['before activity:1', 'after activity:1', 'after activity:2']
    assert await activity_names(client, handle) == [
        'agent__request_ops__capability__redact__before_model_request',
        'agent__request_ops__model_request',
        'agent__request_ops__capability__redact__after_model_request',
        'agent__request_ops__model_request',
        'agent__request_ops__capability__redact__after_model_request',
    ]
    WHERE.clear()
    await _our_replayer().replay_workflow(await handle.fetch_history())
    assert WHERE == []


@pytest.mark.parametrize('retry', [False, True], ids=['plain', 'retry'])
async def test_histories_of_pydantic_ai_2_78_and_ours_replay_on_each_other(
    client: Client, task_queue: str, retry: bool
) -> None:
    reference_module = importlib.import_module('pydantic_ai.durable_exec.temporal')
    reference_agent = Agent(
        FunctionModel(echo), name='request_ops', capabilities=[Redact(), reference_module.TemporalDurability()]
    )
    REFERENCE_AGENTS['agent'] = reference_agent
    reference_activities = list(reference_module.TemporalDurability.from_agent(reference_agent).temporal_activities)

    WHERE.clear()
    RETRIES[:] = [True] if retry else []
    try:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[ReferenceRequestOpsWorkflow],
            activities=reference_activities,
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            handle = await client.start_workflow(
                ReferenceRequestOpsWorkflow.run,
                id=str(uuid.uuid4()),
                task_queue=task_queue,
                execution_timeout=WORKFLOW_TIMEOUT,
            )
            reference_output = await handle.result()
        reference_where = list(WHERE)
        reference_names = await activity_names(client, handle)

        # Ours runs the same activities, in the same order, to the same output.
        RETRIES[:] = [True] if retry else []
        our_handle = await _run_ours(client, f'{task_queue}-ours')
    finally:
        RETRIES.clear()
    assert await our_handle.result() == reference_output == 'my [redacted] plan t=0.25!'
    assert reference_where == WHERE
    assert await activity_names(client, our_handle) == reference_names

    # The reference's history on ours: its recorded projections and failures decoded by ours, nothing runs again.
    WHERE.clear()
    await _our_replayer().replay_workflow(await handle.fetch_history())
    assert WHERE == []

    # Ours on the reference.
    reference = Replayer(
        workflows=[ReferenceRequestOpsWorkflow],
        plugins=[reference_module.PydanticAIPlugin()],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    await reference.replay_workflow(await our_handle.fetch_history())
    assert WHERE == []


def other_reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart('from the other model')])


OTHER = FunctionModel(other_reply, model_name='other')


class Route(AbstractCapability[Any]):
    """A durable `before_model_request` that sends the request to another registered model."""

    id = 'route'

    @durable_operation('before_model_request')
    async def before_model_request(self, ctx: RunContext[Any], request_context: ModelRequestContext) -> Any:
        WHERE.append(f'route {_where(request_context)}')
        request_context.model = OTHER
        return request_context


def _route_agent(durability: Any) -> Agent[None, str]:
    return Agent(FunctionModel(echo), name='route_ops', capabilities=[Route(), durability])


route_agent = _route_agent(TemporalDurability(models={'other': OTHER}))


@workflow.defn
class RouteWorkflow:
    @workflow.run
    async def run(self) -> str:
        return (await route_agent.run('hi')).output


@workflow.defn(name='RouteWorkflow')
class ReferenceRouteWorkflow:
    @workflow.run
    async def run(self) -> str:
        return (await REFERENCE_AGENTS['route'].run('hi')).output


async def test_a_hook_that_swaps_in_a_registered_model_in_its_activity_sends_the_request_there(
    client: Client, task_queue: str
) -> None:
    reference_module = importlib.import_module('pydantic_ai.durable_exec.temporal')
    reference_agent = _route_agent(reference_module.TemporalDurability(models={'other': OTHER}))
    REFERENCE_AGENTS['route'] = reference_agent
    reference_activities = list(reference_module.TemporalDurability.from_agent(reference_agent).temporal_activities)
    WHERE.clear()
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[ReferenceRouteWorkflow],
        activities=reference_activities,
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await client.start_workflow(
            ReferenceRouteWorkflow.run, id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
        )
        assert await handle.result() == 'from the other model'
    assert WHERE == ['route activity:1']

    WHERE.clear()
    async with agent_worker(
        client, workflows=[RouteWorkflow], plugins=[AgentPlugin(route_agent)], task_queue=f'{task_queue}-ours'
    ):
        our_handle = await client.start_workflow(
            RouteWorkflow.run, id=str(uuid.uuid4()), task_queue=f'{task_queue}-ours', execution_timeout=WORKFLOW_TIMEOUT
        )
        # The hook's model came back by its key (`other`), and the request went to that model's activity.
        assert await our_handle.result() == 'from the other model'
    assert WHERE == ['route activity:1']
    assert await activity_names(client, our_handle) == await activity_names(client, handle)

    # Each history replays on the other.
    WHERE.clear()
    ours = Replayer(
        workflows=[RouteWorkflow],
        plugins=[PydanticAIPlugin(), AgentPlugin(route_agent)],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    await ours.replay_workflow(await handle.fetch_history())
    reference = Replayer(
        workflows=[ReferenceRouteWorkflow],
        plugins=[reference_module.PydanticAIPlugin()],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    await reference.replay_workflow(await our_handle.fetch_history())
    assert WHERE == []


request_ops_wrapper = TemporalAgent(Agent(FunctionModel(echo), name='request_ops_wrapper', capabilities=[Redact()]))


@workflow.defn
class WrapperRequestOpsWorkflow:
    @workflow.run
    async def run(self) -> str:
        return (await request_ops_wrapper.run('my secret plan')).output


async def test_the_wrapper_runs_request_hooks_in_their_activities_behind_its_marker(
    client: Client, task_queue: str
) -> None:
    config = client.config()
    config['plugins'] = [PydanticAIPlugin(patches={'durable_temporal.capability_operations': True})]
    switched_on = Client(**config)
    WHERE.clear()
    async with agent_worker(
        switched_on,
        workflows=[WrapperRequestOpsWorkflow],
        plugins=[AgentPlugin(request_ops_wrapper)],
        task_queue=task_queue,
    ):
        handle = await switched_on.start_workflow(
            WrapperRequestOpsWorkflow.run,
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        assert await handle.result() == 'my [redacted] plan t=0.25!'
    assert WHERE == ['before activity:1', 'after activity:1']
    assert await activity_names(client, handle) == [
        'agent__request_ops_wrapper__capability__redact__before_model_request',
        'agent__request_ops_wrapper__model_request',
        'agent__request_ops_wrapper__capability__redact__after_model_request',
    ]


class PlainRoute(AbstractCapability[Any]):
    """A `before_model_request` (not durable) that sends the request to another registered model."""

    async def before_model_request(self, ctx: RunContext[Any], request_context: ModelRequestContext) -> Any:
        request_context.model = OTHER
        return request_context


plain_route_agent = Agent(
    FunctionModel(echo), name='plain_route', capabilities=[PlainRoute(), TemporalDurability(models={'other': OTHER})]
)


@workflow.defn
class PlainRouteWorkflow:
    @workflow.run
    async def run(self) -> str:
        return (await plain_route_agent.run('hi')).output


async def test_a_model_a_plain_hook_swaps_in_goes_to_its_model_activity(client: Client, task_queue: str) -> None:
    # pydantic-ai 2.68+ runs the hook inside `wrap_model_request`, after the durable model was swapped in: ours routes
    # the new model by its key (it was called in workflow code before).
    async with agent_worker(
        client, workflows=[PlainRouteWorkflow], plugins=[AgentPlugin(plain_route_agent)], task_queue=task_queue
    ):
        handle = await client.start_workflow(
            PlainRouteWorkflow.run, id=str(uuid.uuid4()), task_queue=task_queue, execution_timeout=WORKFLOW_TIMEOUT
        )
        assert await handle.result() == 'from the other model'
    assert await activity_names(client, handle) == ['agent__plain_route__model_request']


class Fallback(AbstractCapability[Any]):
    """A durable `after_model_request` that asks for another attempt on the registered model `other`."""

    id = 'fallback'

    @durable_operation('after_model_request')
    async def after_model_request(
        self, ctx: RunContext[Any], *, request_context: ModelRequestContext, response: ModelResponse
    ) -> ModelResponse:
        WHERE.append(f'fallback {_where(request_context)}')
        if getattr(request_context, 'attempt', 1) == 1:
            raise RetryModelRequest('other')
        return response


def _fallback_agent(durability: Any) -> Agent[None, str]:
    return Agent(FunctionModel(echo), name='fallback_ops', capabilities=[Fallback(), durability])


fallback_agent = _fallback_agent(TemporalDurability(models={'other': OTHER}))


@workflow.defn
class FallbackWorkflow:
    @workflow.run
    async def run(self) -> str:
        return (await fallback_agent.run('hi')).output


@workflow.defn(name='FallbackWorkflow')
class ReferenceFallbackWorkflow:
    @workflow.run
    async def run(self) -> str:
        return (await REFERENCE_AGENTS['fallback'].run('hi')).output


async def test_a_retry_model_request_naming_a_model_attempts_it_in_its_activity(
    client: Client, task_queue: str
) -> None:
    reference_module = importlib.import_module('pydantic_ai.durable_exec.temporal')
    reference_agent = _fallback_agent(reference_module.TemporalDurability(models={'other': OTHER}))
    REFERENCE_AGENTS['fallback'] = reference_agent
    reference_activities = list(reference_module.TemporalDurability.from_agent(reference_agent).temporal_activities)
    WHERE.clear()
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[ReferenceFallbackWorkflow],
        activities=reference_activities,
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await client.start_workflow(
            ReferenceFallbackWorkflow.run,
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        assert await handle.result() == 'from the other model'
    reference_where = list(WHERE)

    WHERE.clear()
    async with agent_worker(
        client, workflows=[FallbackWorkflow], plugins=[AgentPlugin(fallback_agent)], task_queue=f'{task_queue}-ours'
    ):
        our_handle = await client.start_workflow(
            FallbackWorkflow.run,
            id=str(uuid.uuid4()),
            task_queue=f'{task_queue}-ours',
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        # The model name crossed back with the `RetryModelRequest`; the second attempt went to that model's activity.
        assert await our_handle.result() == 'from the other model'
    assert reference_where == WHERE == ['fallback activity:1', 'fallback activity:2']
    assert await activity_names(client, our_handle) == await activity_names(client, handle)

    WHERE.clear()
    ours = Replayer(
        workflows=[FallbackWorkflow],
        plugins=[PydanticAIPlugin(), AgentPlugin(fallback_agent)],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    await ours.replay_workflow(await handle.fetch_history())
    reference = Replayer(
        workflows=[ReferenceFallbackWorkflow],
        plugins=[reference_module.PydanticAIPlugin()],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    await reference.replay_workflow(await our_handle.fetch_history())
    assert WHERE == []
