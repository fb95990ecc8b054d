"""Continue-as-new: a long conversation hands itself over to fresh workflow runs, repeating no model or tool call.

The agent's `continue_as_new` handler runs right before a model request when a limit is reached (or Temporal suggests
it) and continues the workflow with `hand_over`: the conversation, usage and deps, the live event stream's state, and
where each agent's conversation was last sent, so that the next run's first model activity is sent only what is new.
"""

from __future__ import annotations

import importlib.util
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from core_helpers import WORKFLOW_TIMEOUT
from pydantic_ai import Agent
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.tools import RunContext, Tool
from pydantic_ai.usage import RunUsage, UsageLimits
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowHistory
from temporalio.worker import Replayer

from durable_temporal import (
    AgentEventStream,
    AgentHandover,
    AgentPlugin,
    ContinueAsNewAfter,
    DepsResolver,
    PydanticAIPlugin,
    TemporalAgent,
    TemporalDurability,
    _message_history,
    hand_over,
)
from durable_temporal.testing import agent_worker

pytestmark = pytest.mark.anyio

TURNS = 300
EVENTS_LIMIT = 600
"""Each run continues as new once its history reaches this many events."""
TURN_EVENTS = 16
"""At most the events one turn adds (a model and a tool activity and their workflow tasks) and the hand-over's."""

MODEL_CALLS: Counter[str] = Counter()
TOOL_CALLS: Counter[str] = Counter()


def _turn_of(messages: list[ModelMessage]) -> int:
    returns = [part for message in messages for part in message.parts if isinstance(part, ToolReturnPart)]
    return len(returns)


def make_model(turns: int) -> FunctionModel:
    def conversation(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        turn = _turn_of(messages)
        MODEL_CALLS[str(turn)] += 1
        if turn < turns:
            return ModelResponse(parts=[ToolCallPart('lookup', {'turn': turn}, f'call-{turn}')])
        return ModelResponse(parts=[TextPart(f'done after {turn} turns')])

    async def streamed(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
        turn = _turn_of(messages)
        MODEL_CALLS[str(turn)] += 1
        if turn < turns:
            yield {0: DeltaToolCall(name='lookup', json_args=json.dumps({'turn': turn}))}
        else:
            yield f'done after {turn} turns'

    return FunctionModel(conversation, stream_function=streamed)


def lookup(turn: int) -> str:
    """A tool returning 2 KB per turn."""
    TOOL_CALLS[str(turn)] += 1
    return f'result {turn}: ' + 'x' * 2048


@dataclass
class ConversationInput:
    prompt: str
    handover: AgentHandover | None = None


def continue_conversation(ctx: RunContext[Any]) -> Any:
    # The next run gets the same prompt (unused: it resumes the conversation) and the hand-over.
    events: AgentEventStream | None = getattr(workflow.instance(), 'events', None)
    return hand_over(ctx, lambda handover: [ConversationInput(prompt='', handover=handover)], events=events)


wrapper_agent = TemporalAgent(
    Agent(make_model(TURNS), name='can_wrap', tools=[lookup]),
    continue_as_new=continue_conversation,
    continue_as_new_after=ContinueAsNewAfter(history_events=EVENTS_LIMIT),
)

COLD_TURNS = 9


def lookup_cold(turn: int) -> str:
    """`lookup`, then forget every conversation this worker cached: the next model activity reads the history."""
    _message_history._cache.clear()  # pyright: ignore[reportPrivateUsage]
    return lookup(turn)


cold_agent = TemporalAgent(
    Agent(make_model(COLD_TURNS), name='can_cold', tools=[Tool(lookup_cold, name='lookup')]),
    continue_as_new=continue_conversation,
    continue_as_new_after=ContinueAsNewAfter(model_requests=3),
)

BYTES_TURNS = 10
BYTES_LIMIT = 40_000

bytes_agent = TemporalAgent(
    Agent(make_model(BYTES_TURNS), name='can_bytes', tools=[lookup]),
    continue_as_new=continue_conversation,
    continue_as_new_after=ContinueAsNewAfter(history_bytes=BYTES_LIMIT),
)

STREAM_TURNS = 12
HAS_WORKFLOW_STREAMS = importlib.util.find_spec('temporalio.contrib.workflow_streams') is not None
NEEDS_WORKFLOW_STREAMS = pytest.mark.skipif(
    not HAS_WORKFLOW_STREAMS, reason='temporalio < 1.27.0 has no Workflow Streams (the event stream the run carries)'
)
capability_agent = Agent(
    make_model(STREAM_TURNS),
    name='can_cap',
    tools=[lookup],
    capabilities=[
        TemporalDurability(
            continue_as_new=continue_conversation,
            continue_as_new_after=ContinueAsNewAfter(model_requests=4),
            event_stream_topic='agent-events' if HAS_WORKFLOW_STREAMS else None,
        )
    ],
)


NO_LIMITS = UsageLimits(request_limit=None)


async def _run_agent(agent: Any, arg: ConversationInput) -> str:
    if arg.handover is None:
        result = await agent.run(arg.prompt, usage_limits=NO_LIMITS)
    else:
        handover = arg.handover.resume()
        result = await agent.run(
            message_history=handover.messages, usage=handover.usage, usage_limits=handover.usage_limits or NO_LIMITS
        )
    usage: Any = result.usage
    requests = (usage if isinstance(usage, RunUsage) else usage()).requests
    return f'{result.output} ({requests} requests)'


@workflow.defn
class WrapperConversation:
    @workflow.run
    async def run(self, arg: ConversationInput) -> str:
        return await _run_agent(wrapper_agent, arg)


@workflow.defn
class BytesConversation:
    @workflow.run
    async def run(self, arg: ConversationInput) -> str:
        return await _run_agent(bytes_agent, arg)


@workflow.defn
class ColdConversation:
    @workflow.run
    async def run(self, arg: ConversationInput) -> str:
        return await _run_agent(cold_agent, arg)


@dataclass
class TenantDeps:
    tenant: str
    secret: str  # never in the history: the hand-over carries the resolver's reference


RESOLVER = DepsResolver[TenantDeps, str](
    reference=lambda deps: deps.tenant, resolve=lambda tenant: TenantDeps(tenant, secret='s3cret')
)
DEPS_TURNS = 4


def lookup_tenant(ctx: RunContext[TenantDeps], turn: int) -> str:
    assert ctx.deps.secret == 's3cret'
    return f'{ctx.deps.tenant} {turn}'


deps_agent = TemporalAgent(
    Agent(make_model(DEPS_TURNS), name='can_deps', deps_type=TenantDeps, tools=[Tool(lookup_tenant, name='lookup')]),
    deps_resolver=RESOLVER,
    continue_as_new=continue_conversation,
    continue_as_new_after=ContinueAsNewAfter(model_requests=2),
)


@workflow.defn
class DepsConversation:
    @workflow.run
    async def run(self, arg: ConversationInput) -> str:
        if arg.handover is None:
            deps = RESOLVER.resolve('acme')
            result = await deps_agent.run(arg.prompt, deps=deps)
        else:
            handover = arg.handover.resume()
            result = await deps_agent.run(
                message_history=handover.messages, deps=RESOLVER.resolve(handover.deps), usage=handover.usage
            )
        last_return = getattr(result.all_messages()[-2].parts[0], 'content', None)
        return f'{result.output} for {last_return}'


chat_agent = TemporalAgent(Agent(make_model(0), name='can_chat'))


@dataclass
class ChatInput:
    prompts: list[str]
    handover: AgentHandover | None = None


@workflow.defn
class ChatConversation:
    """One agent run per prompt, handing over after each (between runs, from the result)."""

    @workflow.run
    async def run(self, arg: ChatInput) -> str:
        history = arg.handover.resume().messages if arg.handover is not None else []
        result = await chat_agent.run(arg.prompts[0], message_history=history)
        if len(arg.prompts) > 1:
            await hand_over(result, lambda handover: [ChatInput(arg.prompts[1:], handover)])
        return str(len(result.all_messages()))


@workflow.defn
class StreamedConversation:
    @workflow.init
    def __init__(self, arg: ConversationInput) -> None:
        prior = arg.handover.event_stream_state if arg.handover is not None else None
        self.events = AgentEventStream(prior_state=prior, drain_timeout=timedelta(seconds=20))

    @workflow.run
    async def run(self, arg: ConversationInput) -> str:
        async with self.events:
            return await _run_agent(capability_agent, arg)


async def _runs(client: Client, workflow_id: str) -> list[WorkflowHandle[Any, Any]]:
    """The handles of every run of the workflow, first to last."""
    handles: list[WorkflowHandle[Any, Any]] = []
    async for execution in client.list_workflows(f'WorkflowId = "{workflow_id}"'):
        handles.append(client.get_workflow_handle(workflow_id, run_id=execution.run_id))
    described = [(await handle.describe(), handle) for handle in handles]
    described.sort(key=lambda pair: pair[0].start_time)
    return [handle for _, handle in described]


async def _first_model_input_bytes(handle: WorkflowHandle[Any, Any]) -> tuple[int, dict[str, Any]]:
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attributes = event.activity_task_scheduled_event_attributes
            if '__model_request' in attributes.activity_type.name:
                payloads = attributes.input.payloads
                return sum(len(payload.data) for payload in payloads), json.loads(payloads[0].data)
    raise AssertionError('no model activity')


async def _history_size(handle: WorkflowHandle[Any, Any]) -> tuple[int, int]:
    """The run's history length in events and its size in bytes, as the server counts them."""
    info = (await handle.describe()).raw_description.workflow_execution_info
    return info.history_length, info.history_size_bytes


async def test_continue_as_new_300_turns_wrapper(client: Client, task_queue: str) -> None:
    """300 turns with a 2 KB tool result each complete over several runs, none past the limit, nothing repeated."""
    MODEL_CALLS.clear()
    TOOL_CALLS.clear()
    workflow_id = f'can-{uuid.uuid4()}'
    started = time.monotonic()
    async with agent_worker(client, workflows=[WrapperConversation], agents=[wrapper_agent], task_queue=task_queue):
        await client.start_workflow(
            WrapperConversation.run,
            ConversationInput(prompt='start'),
            id=workflow_id,
            task_queue=task_queue,
            execution_timeout=timedelta(seconds=600),
        )
        output = await client.get_workflow_handle(workflow_id).result()
    elapsed = time.monotonic() - started
    assert output == f'done after {TURNS} turns ({TURNS + 1} requests)'
    # Every model request and every tool call ran exactly once, across all hand-overs.
    assert sorted(MODEL_CALLS.values()) == [1] * (TURNS + 1)
    assert sorted(TOOL_CALLS.values()) == [1] * TURNS

    runs = await _runs(client, workflow_id)
    assert len(runs) >= 4, len(runs)
    sizes: list[tuple[int, int]] = []
    first_inputs: list[int] = []
    for index, run in enumerate(runs):
        events, size = await _history_size(run)
        sizes.append((events, size))
        # The limit is checked before each model request: a run stops within one turn (and the hand-over) past it.
        assert events <= EVENTS_LIMIT + TURN_EVENTS, (index, events)
        input_bytes, params = await _first_model_input_bytes(run)
        first_inputs.append(input_bytes)
        if index:
            # The first model activity after a hand-over builds on the previous run's last one: it is sent the
            # pending request (one 2 KB tool result), not the whole conversation.
            assert params['history_run_id'] == runs[index - 1].run_id
            assert input_bytes < 6_000, (index, input_bytes)
        if index < len(runs) - 1:
            assert (await run.describe()).status == WorkflowExecutionStatus.CONTINUED_AS_NEW
    print(f'\n{len(runs)} runs in {elapsed:.1f} s; (events, history bytes) per run: {sizes}')
    print(f'first model activity input bytes per run: {first_inputs}')


async def test_continue_as_new_rebuilds_from_the_previous_runs_history(client: Client, task_queue: str) -> None:
    """A worker that cached nothing rebuilds the first request after a hand-over from the previous runs' histories."""
    MODEL_CALLS.clear()
    TOOL_CALLS.clear()
    workflow_id = f'can-cold-{uuid.uuid4()}'
    async with agent_worker(client, workflows=[ColdConversation], agents=[cold_agent], task_queue=task_queue):
        await client.start_workflow(
            ColdConversation.run,
            ConversationInput(prompt='start'),
            id=workflow_id,
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        output = await client.get_workflow_handle(workflow_id).result()
    assert output == f'done after {COLD_TURNS} turns ({COLD_TURNS + 1} requests)'
    runs = await _runs(client, workflow_id)
    assert len(runs) == 4
    for index, run in enumerate(runs[1:], 1):
        _, params = await _first_model_input_bytes(run)
        assert params['history_run_id'] == runs[index - 1].run_id
    assert sorted(MODEL_CALLS.values()) == [1] * (COLD_TURNS + 1)
    assert sorted(TOOL_CALLS.values()) == [1] * COLD_TURNS


def _largest_turn_bytes(history: WorkflowHistory) -> int:
    """The bytes of the largest turn of a run: the events from one model request's scheduling to the next's."""
    turns: list[int] = [0]
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            break  # the hand-over holds the conversation: not a turn
        attrs = event.activity_task_scheduled_event_attributes
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED and attrs.activity_type.name.endswith(
            '__model_request'
        ):
            turns.append(0)
        turns[-1] += event.ByteSize()
    return max(turns[1:] or [0])


async def test_continue_as_new_after_history_bytes(client: Client, task_queue: str) -> None:
    """A bytes limit hands over when reached; a run whose carried conversation alone passes it still makes progress."""
    MODEL_CALLS.clear()
    TOOL_CALLS.clear()
    workflow_id = f'can-bytes-{uuid.uuid4()}'
    async with agent_worker(client, workflows=[BytesConversation], agents=[bytes_agent], task_queue=task_queue):
        await client.start_workflow(
            BytesConversation.run,
            ConversationInput(prompt='start'),
            id=workflow_id,
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        output = await client.get_workflow_handle(workflow_id).result()
    assert output == f'done after {BYTES_TURNS} turns ({BYTES_TURNS + 1} requests)'
    runs = await _runs(client, workflow_id)
    assert len(runs) > 2
    sizes = [(await _history_size(run))[1] for run in runs]
    histories = [await run.fetch_history() for run in runs]
    carried = [history.events[0].ByteSize() for history in histories]
    for index in range(len(runs) - 1):
        # A run stops within a turn past the limit; its last event, the hand-over, holds the conversation once more (as
        # the next run's input does). A turn is measured, not assumed: its events' bytes depend on the pydantic-ai line
        # (about 6 KB on 1.107, 11 KB on 2.78, whose run context and tool definitions carry more fields).
        turn = _largest_turn_bytes(histories[index])
        assert sizes[index] - carried[index + 1] <= BYTES_LIMIT + turn + 2_000, (sizes, carried, turn)
    assert sorted(MODEL_CALLS.values()) == [1] * (BYTES_TURNS + 1)
    assert sorted(TOOL_CALLS.values()) == [1] * BYTES_TURNS


async def test_continue_as_new_carries_the_deps_reference(client: Client, task_queue: str) -> None:
    """With a `deps_resolver`, the hand-over carries the reference: the secret never enters any run's history."""
    workflow_id = f'can-deps-{uuid.uuid4()}'
    async with agent_worker(client, workflows=[DepsConversation], agents=[deps_agent], task_queue=task_queue):
        await client.start_workflow(
            DepsConversation.run,
            ConversationInput(prompt='start'),
            id=workflow_id,
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        output = await client.get_workflow_handle(workflow_id).result()
    assert output == f'done after {DEPS_TURNS} turns for acme {DEPS_TURNS - 1}'
    runs = await _runs(client, workflow_id)
    assert len(runs) == 3  # 5 requests, 2 per run
    for run in runs:
        assert 's3cret' not in (await run.fetch_history()).to_json()


async def test_continue_as_new_between_agent_runs(client: Client, task_queue: str) -> None:
    """`hand_over(result, ...)` between runs: the next run's first request is sent only its new prompt."""
    workflow_id = f'can-chat-{uuid.uuid4()}'
    async with agent_worker(client, workflows=[ChatConversation], agents=[chat_agent], task_queue=task_queue):
        await client.start_workflow(
            ChatConversation.run,
            ChatInput(['one', 'two', 'three']),
            id=workflow_id,
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        assert await client.get_workflow_handle(workflow_id).result() == '6'
    runs = await _runs(client, workflow_id)
    assert len(runs) == 3
    for index, run in enumerate(runs[1:], 1):
        _, params = await _first_model_input_bytes(run)
        assert params['history_run_id'] == runs[index - 1].run_id
        assert params['history_keep'] == 2 * index
        assert len(params['messages']) == 1  # the new prompt only


@NEEDS_WORKFLOW_STREAMS
async def test_continue_as_new_replays(client: Client, task_queue: str) -> None:
    """A run that continued as new, and the run it handed over to, replay without a nondeterminism error."""
    workflow_id = f'can-replay-{uuid.uuid4()}'
    async with agent_worker(
        client, workflows=[StreamedConversation], plugins=[AgentPlugin(capability_agent)], task_queue=task_queue
    ):
        handle = await client.start_workflow(
            StreamedConversation.run,
            ConversationInput(prompt='start'),
            id=workflow_id,
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        # Read to the end, which acknowledges the terminal event: the last run need not wait its drain timeout.
        async with TemporalDurability.from_agent(capability_agent).stream_agent_events(client, handle) as events:
            async for _ in events:
                pass
        assert await client.get_workflow_handle(workflow_id).result() == (
            f'done after {STREAM_TURNS} turns ({STREAM_TURNS + 1} requests)'
        )
    runs = await _runs(client, workflow_id)
    assert len(runs) == 4  # 13 requests, 4 per run
    replayer = Replayer(workflows=[StreamedConversation], plugins=[PydanticAIPlugin(), AgentPlugin(capability_agent)])
    # The first run (which hands over), a middle one (which starts from a hand-over and hands over) and the last.
    for run in [runs[0], runs[1], runs[-1]]:
        result = await replayer.replay_workflow(await run.fetch_history(), raise_on_replay_failure=False)
        assert result.replay_failure is None


@NEEDS_WORKFLOW_STREAMS
async def test_continue_as_new_event_stream_survives(client: Client, task_queue: str) -> None:
    """A consumer subscribed before the hand-overs reads every event of the conversation, offsets continuing."""
    MODEL_CALLS.clear()
    TOOL_CALLS.clear()
    workflow_id = f'can-stream-{uuid.uuid4()}'
    async with agent_worker(
        client, workflows=[StreamedConversation], plugins=[AgentPlugin(capability_agent)], task_queue=task_queue
    ):
        handle = await client.start_workflow(
            StreamedConversation.run,
            ConversationInput(prompt='start'),
            id=workflow_id,
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )
        offsets: list[int] = []
        kinds: list[str] = []
        durability = TemporalDurability.from_agent(capability_agent)
        async with durability.stream_agent_events(client, handle, output_type=str) as events:
            async for event in events:
                offsets.append(events.offset)
                kinds.append(event.event_kind)
        output = await client.get_workflow_handle(workflow_id).result()
    assert output == f'done after {STREAM_TURNS} turns ({STREAM_TURNS + 1} requests)'
    assert len(await _runs(client, workflow_id)) == 4
    # One tool call and one tool result per turn, across all four runs, in order and once each.
    assert kinds.count('function_tool_call') == STREAM_TURNS
    assert kinds.count('function_tool_result') == STREAM_TURNS
    assert kinds[-1] == 'agent_run_result'
    assert offsets == sorted(set(offsets))
    assert sorted(MODEL_CALLS.values()) == [1] * (STREAM_TURNS + 1)
    assert sorted(TOOL_CALLS.values()) == [1] * STREAM_TURNS


def test_continue_as_new_after_needs_handler() -> None:
    with pytest.raises(UserError, match='needs a `continue_as_new=` handler'):
        TemporalDurability(continue_as_new_after=ContinueAsNewAfter(model_requests=3))
    with pytest.raises(UserError, match='positive'):
        ContinueAsNewAfter(history_events=0)
