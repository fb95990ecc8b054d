"""Payloads over Temporal's size limit fail the run at once; with a claim-check store the run completes.

Without the check a 3 MB tool result looped forever on the dev server: the SDK refused the activity completion, the
activity (and the tool) ran again with backoff and the caller never heard back (pydantic-ai issues 7110 and 7164).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from core_helpers import WORKFLOW_TIMEOUT
from pydantic import BaseModel
from pydantic_ai import Agent, RunContext
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.converter import DataConverter, PayloadCodec
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.service import RPCError

from durable_temporal import ClaimCheckCodec, FileClaimCheckStore, PydanticAIPlugin, PydanticAIWorkflow, TemporalAgent
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio

MB = 1024 * 1024
TOOL_CALLS: list[int] = []


def call_tools(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    returns = [part for message in messages for part in message.parts if isinstance(part, ToolReturnPart)]
    if not returns:
        prompt = next(
            part.content for message in messages for part in message.parts if isinstance(part, UserPromptPart)
        )
        size = int(str(prompt).split()[-1])
        return ModelResponse(parts=[ToolCallPart('produce', {'size': size}, f'c{i}') for i in range(2)])
    return ModelResponse(parts=[TextPart(f'got {sum(len(str(part.content)) for part in returns)} characters')])


class Tenant(BaseModel):
    document: str = ''


payload_agent = Agent(FunctionModel(call_tools), name='payloads', deps_type=Tenant)


@payload_agent.tool
async def produce(ctx: RunContext[Tenant], size: int) -> str:
    TOOL_CALLS.append(size)
    return 'x' * size


temporal_payload_agent = TemporalAgent(payload_agent)


@workflow.defn
class PayloadWorkflow:
    @workflow.run
    async def run(self, size: int, deps_size: int) -> str:
        result = await temporal_payload_agent.run(f'produce {size}', deps=Tenant(document='d' * deps_size))
        return result.output


@dataclass
class Outcome:
    handle: WorkflowHandle[Any, str]
    result: str | BaseException
    seconds: float
    """From the start of the workflow to its result (the worker is already polling)."""


async def _run(client: Client, size: int, deps_size: int = 0) -> Outcome:
    async with agent_worker(client, workflows=[PayloadWorkflow], agents=[temporal_payload_agent]) as worker:
        started = time.monotonic()
        handle = await client.start_workflow(
            PayloadWorkflow.run,
            args=[size, deps_size],
            id=str(uuid.uuid4()),
            task_queue=worker.task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        try:
            result: str | BaseException = await handle.result()
        except WorkflowFailureError as error:
            result = error
        return Outcome(handle, result, time.monotonic() - started)


def _client_with(client: Client, plugin: PydanticAIPlugin, data_converter: DataConverter | None = None) -> Client:
    """A client of the same server with `plugin` instead of the session's plugins."""
    config = client.config()
    config['plugins'] = [plugin]
    if data_converter is not None:
        config['data_converter'] = data_converter
    return Client(**config)


def _messages(error: BaseException) -> str:
    """The messages of `error` and its causes (Temporal chains them: workflow, activity, application error)."""
    found: list[str] = []
    current: BaseException | None = error
    while current is not None:
        found.append(str(current))
        current = getattr(current, 'cause', None) or current.__cause__
    return '\n'.join(found)


async def _history_size(handle: WorkflowHandle[Any, Any]) -> int:
    history = await handle.fetch_history()
    return sum(event.ByteSize() for event in history.events)


async def test_an_oversized_tool_result_fails_the_run_within_seconds(client: Client) -> None:
    TOOL_CALLS.clear()
    run = await _run(client, 3 * MB)
    outcome = run.result

    assert isinstance(outcome, WorkflowFailureError)
    # A `UserError` in workflow code (as pydantic-ai 2.x fails it), caused by the activity's failure.
    assert isinstance(outcome.cause, ApplicationError)
    assert outcome.cause.type == 'UserError'
    assert isinstance(outcome.cause.cause, ActivityError)
    message = _messages(outcome)
    assert "The result of tool 'produce'" in message
    assert 'agent__payloads__toolset__<agent>__call_tool' in message
    assert '3.0 MiB' in message
    assert 'payload size limit of 2.0 MiB (2097152 bytes)' in message
    assert 'claim_check=FileClaimCheckStore' in message
    # Not retried: each of the two parallel calls ran its tool once.
    assert TOOL_CALLS == [3 * MB, 3 * MB]
    assert run.seconds < 10


async def test_tool_results_that_pass_alone_but_overflow_the_next_model_request_fail_it(client: Client) -> None:
    # Each result is 1.2 MiB (under the limit); the next model request carries both.
    outcome = (await _run(client, int(1.2 * MB))).result

    assert isinstance(outcome, WorkflowFailureError)
    message = _messages(outcome)
    assert "The messages of a model request (activity 'agent__payloads__model_request')" in message
    assert 'over the Temporal payload size limit of 2.0 MiB' in message
    assert UserError.__name__ in repr(outcome.cause)


async def test_oversized_deps_fail_the_run_naming_the_deps(client: Client) -> None:
    TOOL_CALLS.clear()
    outcome = (await _run(client, 10, deps_size=3 * MB)).result

    assert isinstance(outcome, WorkflowFailureError)
    message = _messages(outcome)
    assert "the run's deps are 3.0 MiB" in message
    assert TOOL_CALLS == []


async def test_with_a_claim_check_store_the_run_completes_and_the_history_stays_small(
    client: Client, tmp_path: Path
) -> None:
    store = FileClaimCheckStore(tmp_path)
    claim_client = _client_with(client, PydanticAIPlugin(claim_check=store))
    TOOL_CALLS.clear()

    run = await _run(claim_client, 3 * MB)

    assert run.result == f'got {6 * MB} characters'
    assert TOOL_CALLS == [3 * MB, 3 * MB]
    assert await _history_size(run.handle) < 100_000
    stored = [path for path in tmp_path.rglob('*') if path.is_file()]
    # Both results have the same bytes (one file), and the model request carrying them is another.
    assert len(stored) == 2
    assert all(path.stat().st_size > 3 * MB for path in stored)


class ReversingCodec(PayloadCodec):
    """A stand-in for an encryption codec: reverses the bytes and marks them."""

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [
            Payload(metadata={'encoding': b'test/reversed'}, data=payload.SerializeToString()[::-1])
            for payload in payloads
        ]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [
            Payload.FromString(payload.data[::-1]) if payload.metadata.get('encoding') == b'test/reversed' else payload
            for payload in payloads
        ]


async def test_the_claim_check_keeps_the_users_codec_and_stores_what_it_encoded(client: Client, tmp_path: Path) -> None:
    store = FileClaimCheckStore(tmp_path)
    encrypting = dataclasses.replace(client.data_converter, payload_codec=ReversingCodec())
    codec_client = _client_with(client, PydanticAIPlugin(claim_check=store), data_converter=encrypting)
    codec = codec_client.data_converter.payload_codec
    assert isinstance(codec, ClaimCheckCodec)
    assert isinstance(codec.inner, ReversingCodec)

    run = await _run(codec_client, 3 * MB)

    assert run.result == f'got {6 * MB} characters'
    assert await _history_size(run.handle) < 100_000
    for path in (path for path in tmp_path.rglob('*') if path.is_file()):
        assert Payload.FromString(path.read_bytes()).metadata['encoding'] == b'test/reversed'


@workflow.defn
class MessagesWorkflow(PydanticAIWorkflow):
    __pydantic_ai_agents__ = (temporal_payload_agent,)

    @workflow.run
    async def run(self, size: int) -> list[list[ModelMessage]]:
        result = await temporal_payload_agent.run(f'produce {size}', deps=Tenant())
        # Twice the history: each activity passes the check, the workflow's result does not.
        return [result.all_messages()] * 2


async def test_an_oversized_workflow_result_fails_the_workflow(client: Client) -> None:
    async with agent_worker(client, workflows=[MessagesWorkflow]) as worker:
        handle = await client.start_workflow(
            MessagesWorkflow.run,
            700_000,
            id=str(uuid.uuid4()),
            task_queue=worker.task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()

    message = _messages(failure.value)
    assert 'The result of workflow MessagesWorkflow is 2.7 MiB' in message
    assert 'over the Temporal payload size limit of 2.0 MiB' in message


async def test_an_oversized_workflow_input_is_refused_when_the_workflow_starts(client: Client) -> None:
    # Temporal's own behaviour, which the guide promises: the caller sees the refusal at once.
    with pytest.raises(RPCError, match='Blob data size exceeds limit'):
        await client.start_workflow(
            PayloadWorkflow.run, args=['x' * 3 * MB, 0], id=str(uuid.uuid4()), task_queue='nobody-polls'
        )


def test_a_claim_check_threshold_over_the_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match='claim_check_threshold .* must be below payload_size_limit'):
        PydanticAIPlugin(claim_check=FileClaimCheckStore(tmp_path), claim_check_threshold=3 * MB)


async def test_the_claim_check_codec_round_trips_and_names_a_missing_payload(tmp_path: Path) -> None:
    store = FileClaimCheckStore(tmp_path)
    codec = ClaimCheckCodec(store, threshold=200)
    small, large = Payload(data=b'x' * 100), Payload(metadata={'encoding': b'binary/plain'}, data=b'y' * 1000)

    encoded = await codec.encode([small, large])

    assert encoded[0] == small
    assert encoded[1].metadata['encoding'] == b'durable/claim-check'
    assert encoded[1].ByteSize() < 200
    assert await codec.decode(encoded) == [small, large]
    # The same bytes again are the same key: stored once.
    assert (await codec.encode([large]))[0] == encoded[1]
    assert len([path for path in tmp_path.rglob('*') if path.is_file()]) == 1

    empty = ClaimCheckCodec(FileClaimCheckStore(tmp_path / 'empty'))
    with pytest.raises(RuntimeError, match='has no payload .* Every worker and client of the namespace must use'):
        await empty.decode(encoded)
