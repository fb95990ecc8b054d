"""Secrets passed the documented way never reach the workflow history; passed the naive way, they do.

Issue 15: a secret in `deps` was in the history (every activity's input) with nothing in our API to keep it out. The
documented ways: a `DepsResolver` (deps cross as a reference and are rebuilt in each activity), and a payload codec
(encryption), which `PydanticAIPlugin` keeps. Each test reads the history back from the dev server and searches both
its raw bytes and its payloads decoded with Temporal's DEFAULT data converter for the secret.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pytest
from core_helpers import WORKFLOW_TIMEOUT
from google.protobuf.message import Message
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import AgentStreamEvent, ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import History
from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter, PayloadCodec
from temporalio.worker import Replayer

from durable_kernel import DepsResolver
from durable_temporal import PydanticAIPlugin, TemporalAgent
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio

SECRET = 'sk-live-4f1c9e0b7a2d-secret'
"""The credential the worker holds; what matters is where it ends up."""

WORKER_SECRETS = {'acme': SECRET}
"""The worker's secret store (its environment, a vault): the only place the secret is read from."""


class ApiClient:
    """A live client holding a credential: not serializable, and must not be."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key

    def authorized(self) -> bool:
        return self.api_key == SECRET


@dataclass
class TenantDeps:
    """The live deps tools see: a tenant and its client."""

    tenant: str
    client: ApiClient


def resolve_tenant(tenant: str) -> TenantDeps:
    return TenantDeps(tenant, ApiClient(WORKER_SECRETS[tenant]))


RESOLVER = DepsResolver[TenantDeps, str](reference=lambda deps: deps.tenant, resolve=resolve_tenant)

HANDLER_SAW: list[bool] = []


def call_then_answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    returns = [part for message in messages for part in message.parts if isinstance(part, ToolReturnPart)]
    if not returns:
        return ModelResponse(parts=[ToolCallPart('check_access', {})])
    return ModelResponse(parts=[TextPart(f'access: {returns[0].content}')])


async def call_then_answer_streamed(
    messages: list[ModelMessage], info: AgentInfo
) -> AsyncIterator[str | DeltaToolCalls]:
    # With an event stream handler the model requests are streamed.
    response = call_then_answer(messages, info)
    part = response.parts[0]
    if isinstance(part, TextPart):
        yield part.content
    else:
        assert isinstance(part, ToolCallPart)
        yield {0: DeltaToolCall(name=part.tool_name, json_args='{}', tool_call_id=part.tool_call_id)}


async def saw_live_client(ctx: RunContext[TenantDeps], stream: AsyncIterable[AgentStreamEvent]) -> None:
    async for _ in stream:
        HANDLER_SAW.append(ctx.deps.client.authorized())


resolved_agent = Agent(
    FunctionModel(call_then_answer, stream_function=call_then_answer_streamed),
    name='secret_resolved',
    deps_type=TenantDeps,
)


@resolved_agent.tool
async def check_access(ctx: RunContext[TenantDeps]) -> str:
    # Runs in an activity: the deps were rebuilt there from the reference.
    return f'{ctx.deps.tenant} authorized={ctx.deps.client.authorized()}'


@resolved_agent.instructions
def tenant_instructions(ctx: RunContext[TenantDeps]) -> str:
    # Runs in workflow code: the live deps there are the ones the workflow passed to `run()`.
    return f'You serve {ctx.deps.tenant} (client ready: {ctx.deps.client.authorized()}).'


temporal_resolved_agent = TemporalAgent(resolved_agent, deps_resolver=RESOLVER, event_stream_handler=saw_live_client)


@workflow.defn
class ResolvedSecretWorkflow:
    @workflow.run
    async def run(self, tenant: str) -> str:
        # The workflow input is the reference; the live deps are rebuilt in workflow code (no I/O in the resolver).
        deps = RESOLVER.resolve(tenant)
        return (await temporal_resolved_agent.run('may I?', deps=deps)).output


@dataclass
class NaiveDeps:
    """The naive way: the credential itself in (serializable) deps."""

    tenant: str
    api_key: str


def call_naive_then_answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    returns = [part for message in messages for part in message.parts if isinstance(part, ToolReturnPart)]
    if not returns:
        return ModelResponse(parts=[ToolCallPart('check_access_naive', {})])
    return ModelResponse(parts=[TextPart(f'access: {returns[0].content}')])


naive_agent = Agent(FunctionModel(call_naive_then_answer), name='secret_naive', deps_type=NaiveDeps)


@naive_agent.tool
async def check_access_naive(ctx: RunContext[NaiveDeps]) -> str:
    return f'{ctx.deps.tenant} authorized={ctx.deps.api_key == SECRET}'


temporal_naive_agent = TemporalAgent(naive_agent)


@workflow.defn
class NaiveSecretWorkflow:
    @workflow.run
    async def run(self, tenant: str) -> str:
        deps = NaiveDeps(tenant, WORKER_SECRETS[tenant])
        return (await temporal_naive_agent.run('may I?', deps=deps)).output


class XorTestCodec(PayloadCodec):
    """TEST-ONLY codec (reversible XOR with a fixed key, not encryption): shows where a codec sits, nothing more.

    The durable-temporal tests run with the package's declared dependencies only, so they cannot use `cryptography`;
    `examples/temporal/secrets_and_clients.py` shows a real AES-GCM codec.
    """

    KEY = b'durable-test-key'

    def _xor(self, data: bytes) -> bytes:
        return bytes(byte ^ self.KEY[i % len(self.KEY)] for i, byte in enumerate(data))

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [
            Payload(metadata={'encoding': b'binary/xor-test'}, data=self._xor(p.SerializeToString())) for p in payloads
        ]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        decoded: list[Payload] = []
        for payload in payloads:
            if payload.metadata.get('encoding') != b'binary/xor-test':
                decoded.append(payload)
                continue
            inner = Payload()
            inner.ParseFromString(self._xor(payload.data))
            decoded.append(inner)
        return decoded


def _payloads(message: object) -> list[Payload]:
    """Every `Payload` message nested anywhere in a protobuf message."""
    found: list[Payload] = []

    def visit(node: object) -> None:
        if isinstance(node, Payload):
            found.append(node)
            return
        fields = getattr(node, 'ListFields', None)
        if fields is None:
            return
        for descriptor, value in fields():
            if descriptor.message_type is None:
                continue
            if isinstance(value, Message):
                visit(value)
            elif isinstance(value, Mapping):  # a map field of messages
                for item in cast('Mapping[object, object]', value).values():
                    visit(item)
            else:  # a repeated field of messages
                for item in cast('Iterable[object]', value):
                    visit(item)

    visit(message)
    return found


async def secret_in_history(workflow_history: WorkflowHistory, *, codec: PayloadCodec | None = None) -> bool:
    """Whether `SECRET` is in the history's raw bytes or in any of its payloads decoded with the default converter.

    `codec` decodes payloads first (to check that a codec's payloads do hold the data).
    """
    history = History(events=workflow_history.events)
    if SECRET.encode() in history.SerializeToString():
        return True
    converter = (
        DataConverter.default if codec is None else dataclasses.replace(DataConverter.default, payload_codec=codec)
    )
    for payload in _payloads(history):
        try:
            [decoded] = await converter.decode([payload])
        except KeyError:  # an encoding the converter does not know (a codec's): its raw bytes were searched above
            continue
        if SECRET in repr(decoded):
            return True
    return False


async def _run(client: Client, workflow_class: type, agent: TemporalAgent[Any, str]) -> WorkflowHistory:
    task_queue = f'secrets-{uuid.uuid4()}'
    async with agent_worker(client, workflows=[workflow_class], agents=[agent], task_queue=task_queue):
        handle = await client.start_workflow(
            workflow_class.__name__,  # the workflow's name: its class name
            'acme',
            id=str(uuid.uuid4()),
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
            result_type=str,
        )
        assert await handle.result() == 'access: acme authorized=True'
        return await handle.fetch_history()


async def test_resolved_deps_keep_the_secret_out_of_the_history(client: Client) -> None:
    HANDLER_SAW.clear()
    history = await _run(client, ResolvedSecretWorkflow, temporal_resolved_agent)

    assert not await secret_in_history(history)
    # The tool (an activity), the instructions (workflow code) and the handler (an activity) saw the live client.
    assert HANDLER_SAW
    assert all(HANDLER_SAW)
    # What crossed instead is the reference.
    scheduled = [
        e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.HasField('activity_task_scheduled_event_attributes')
    ]
    assert scheduled
    assert {DataConverter.default.payload_converter.from_payload(a.input.payloads[1]) for a in scheduled} == {'acme'}


async def test_a_replay_resolves_the_reference_again(client: Client) -> None:
    """A crashed worker's replacement replays the workflow: the reference in its input is resolved again."""
    history = await _run(client, ResolvedSecretWorkflow, temporal_resolved_agent)
    replayer = Replayer(workflows=[ResolvedSecretWorkflow], plugins=[PydanticAIPlugin()], debug_mode=True)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None


async def test_naive_deps_put_the_secret_in_the_history(client: Client) -> None:
    """The counter-test: the check above finds a secret that is there."""
    history = await _run(client, NaiveSecretWorkflow, temporal_naive_agent)

    assert await secret_in_history(history)


async def test_a_codec_keeps_naive_deps_unreadable_and_the_plugin_keeps_the_codec(client: Client) -> None:
    config = client.config()
    config['data_converter'] = dataclasses.replace(config['data_converter'], payload_codec=XorTestCodec())
    config['plugins'] = [PydanticAIPlugin()]
    with_codec = Client(**config)
    # The plugin replaced the payload converter (pydantic) and kept the codec.
    assert isinstance(with_codec.data_converter.payload_codec, XorTestCodec)

    history = await _run(with_codec, NaiveSecretWorkflow, temporal_naive_agent)

    assert not await secret_in_history(history)
    # The payloads do hold it, for whoever has the codec (so the check above could have failed).
    assert await secret_in_history(history, codec=XorTestCodec())
