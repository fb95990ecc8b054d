"""Live events on Temporal: a durable agent run's events published to a Workflow Stream, read by callers outside it.

The channel is `temporalio.contrib.workflow_streams`: the workflow hosts a `WorkflowStream` (an offset-addressed log
kept in workflow state, written by signals and read by long-poll updates), so no other store is involved and the
events live exactly as long as the run. Three writers feed one topic of it:

- the streamed model-request activity publishes the model's events (part starts, deltas, ends) through a
  `WorkflowStreamClient`, which buffers them and sends one signal per `batch_interval`;
- workflow code publishes every other event (tool calls and results) straight into the log: no activity, no signal,
  and a replay rebuilds the log identically, so each is delivered exactly once;
- workflow code publishes the terminal `AgentRunResultEvent` when the run ends, and the workflow waits (bounded) for
  a consumer to acknowledge it with a signal, because a Workflow Stream cannot be read once its workflow returned.

The wire format is pydantic-ai 2.68's own (the same event payloads, terminal event, signal name and token), so a
consumer written for its `stream_agent_events` reads a run of ours and the other way round. One addition: an activity
attempt after the first publishes a `durable_kernel.UnitRetryEvent` first, on a sibling topic
(`<topic>#unit-retries`) that our consumer subscribes to as well and 2.68's never sees.

`temporalio.contrib.workflow_streams` first shipped in temporalio 1.27.0; it is imported only when a topic is used,
so the package keeps working on older temporalio releases without the feature.
"""

from __future__ import annotations

import contextlib
import importlib
import warnings
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any, cast
from weakref import WeakValueDictionary

import pydantic
import temporalio
from pydantic_ai import messages as pai_messages
from pydantic_ai.agent import EventStreamHandler
from pydantic_ai.exceptions import UserError
from pydantic_ai.output import OutputDataT
from pydantic_ai.run import AgentRunResult, AgentRunResultEvent
from pydantic_ai.tools import AgentDepsT, RunContext
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from durable_kernel import (
    DurableAgentRunEvents,
    EventStreamTopic,
    UnitRetryEvent,
    coerce_event_stream_topic,
    is_model_stream_event,
)

if TYPE_CHECKING:
    from temporalio.contrib.workflow_streams import WorkflowStream, WorkflowStreamState

__all__ = (
    'ANY_OUTPUT',
    'DRAINED_SIGNAL',
    'WORKFLOW_STREAMS_MIN_TEMPORALIO',
    'AgentEventStream',
    'WorkflowStreamTopic',
    'check_hosted_stream',
    'publish_agent_result',
    'publish_workflow_events',
    'require_event_stream_topic',
    'retry_topic_name',
    'stream_agent_events',
    'workflow_stream_event_handler',
)

WorkflowStreamTopic = EventStreamTopic
"""pydantic-ai 2.68's name for the topic a Temporal run publishes to: the kernel's `EventStreamTopic` itself."""

DRAINED_SIGNAL = '__pydantic_ai_agent_events_drained'
"""The signal a consumer sends once it received the terminal event (2.68's name: the two interoperate)."""

WORKFLOW_STREAMS_MIN_TEMPORALIO = '1.27.0'
"""The first temporalio release with `temporalio.contrib.workflow_streams` (and the API used here)."""

ANY_OUTPUT: type[Any] = cast('type[Any]', Any)
"""`output_type`'s default: the result's output is decoded as it was serialized."""

_DEFAULT_POLL_COOLDOWN = timedelta(milliseconds=100)
_DEFAULT_DRAIN_TIMEOUT = timedelta(seconds=30)
_RETRY_TOPIC_SUFFIX = '#unit-retries'


def retry_topic_name(topic: str) -> str:
    """The sibling topic that carries the `UnitRetryEvent`s of `topic` (unseen by pydantic-ai 2.68's consumer)."""
    return f'{topic}{_RETRY_TOPIC_SUFFIX}'


def _workflow_streams() -> ModuleType:
    """`temporalio.contrib.workflow_streams`, imported when a topic is first used."""
    try:
        return importlib.import_module('temporalio.contrib.workflow_streams')
    except ImportError as error:
        raise UserError(
            f'`event_stream_topic` publishes to a Temporal Workflow Stream, which needs temporalio >= '
            f'{WORKFLOW_STREAMS_MIN_TEMPORALIO} (`temporalio.contrib.workflow_streams`); this environment has '
            f'temporalio {temporalio.__version__}. Upgrade it (`pip install "temporalio>='
            f'{WORKFLOW_STREAMS_MIN_TEMPORALIO}"`), or remove `event_stream_topic`.'
        ) from error


def require_event_stream_topic(topic: str | EventStreamTopic | None) -> EventStreamTopic | None:
    """An `event_stream_topic=` argument as a topic, checking that this temporalio can publish it."""
    coerced = coerce_event_stream_topic(topic)
    if coerced is not None:
        _workflow_streams()
    return coerced


@dataclass(repr=False)
class _DurableAgentRunResultEvent(AgentRunResultEvent[OutputDataT]):
    """The terminal event on the wire: the result, and the token its acknowledgment carries back."""

    drain_token: str = field(kw_only=True)


# Workflow code cannot reach the workflow instance's attributes, so the stream registers itself under the run it
# belongs to. Weak values: the entry goes with the instance that holds the stream; a replay after an eviction runs
# `@workflow.init` again and registers the new instance's stream under the same run id.
_streams: WeakValueDictionary[str, AgentEventStream] = WeakValueDictionary()


class AgentEventStream:
    """The Workflow Stream a durable agent run publishes its events to, hosted by the workflow.

    Create it in the workflow's `@workflow.init`, keep it in an attribute, and run the agent inside it:

    ```python
    @workflow.defn
    class ChatWorkflow:
        @workflow.init
        def __init__(self, prompt: str) -> None:
            self.events = AgentEventStream()

        @workflow.run
        async def run(self, prompt: str) -> str:
            async with self.events:
                result = await agent.run(prompt)
            return result.output
    ```

    Leaving the block waits, at most `drain_timeout`, until a consumer acknowledged the run's terminal event: a
    Workflow Stream is read from the running workflow, so whatever a consumer had not polled when the workflow returns
    can no longer be read. A run that nobody watches only waits `drain_timeout`; its result is unaffected.
    """

    def __init__(
        self,
        stream: WorkflowStream | None = None,
        *,
        prior_state: WorkflowStreamState | None = None,
        drain_timeout: timedelta = _DEFAULT_DRAIN_TIMEOUT,
    ) -> None:
        """Host the stream. Call it from the workflow's `@workflow.init` method.

        Args:
            stream: A `WorkflowStream` the workflow already hosts for topics of its own (a workflow hosts at most
                one); by default one is created.
            prior_state: The stream state carried over by continue-as-new, for the stream created here (ignored
                with `stream`).
            drain_timeout: How long leaving the block waits for a consumer to acknowledge the terminal event.

        Raises:
            UserError: temporalio is older than 1.27.0, or this is not workflow code.
        """
        streams = _workflow_streams()
        if not workflow.in_workflow():
            raise UserError(
                "`AgentEventStream()` is hosted by a workflow: create it in the workflow's `@workflow.init` method."
            )
        self._stream: WorkflowStream = stream if stream is not None else streams.WorkflowStream(prior_state)
        self._drain_timeout = drain_timeout
        self._pending_drains: set[str] = set()
        self._terminal_events = 0
        workflow.set_signal_handler(DRAINED_SIGNAL, self._on_drained)  # pyright: ignore[reportUnknownMemberType]
        _streams[workflow.info().run_id] = self

    @property
    def stream(self) -> WorkflowStream:
        """The `WorkflowStream`, to publish topics of your own or to carry its state over a continue-as-new."""
        return self._stream

    def _on_drained(self, drain_token: str) -> None:
        # Any consumer's acknowledgment releases the wait; a repeated one changes nothing.
        self._pending_drains.discard(drain_token)

    def _publish(self, topic: str, event: Any) -> None:
        self._stream.topic(topic).publish(event)

    def _publish_result(self, topic: str, result: AgentRunResult[Any]) -> None:
        # The token names this execution and this run's terminal event (a workflow may run its agent several times).
        token = f'{workflow.info().run_id}:{self._terminal_events}'
        self._terminal_events += 1
        self._pending_drains.add(token)
        self._publish(topic, _DurableAgentRunResultEvent(result, drain_token=token))

    async def __aenter__(self) -> AgentEventStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Wait (at most `drain_timeout`) for the terminal events to be acknowledged, then release the pollers."""
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(lambda: not self._pending_drains, timeout=self._drain_timeout)
        # A subscription is a long-poll update: the workflow cannot complete while one waits, so they are released.
        self._stream.detach_pollers()
        await workflow.wait_condition(workflow.all_handlers_finished)


def _hosted_stream() -> AgentEventStream:
    stream = _streams.get(workflow.info().run_id)
    if stream is None:
        raise UserError(
            'This agent has an `event_stream_topic`, so its workflow must host an `AgentEventStream`: create one in '
            "the workflow's `@workflow.init` method (`self.events = AgentEventStream()`) and run the agent inside "
            '`async with self.events:`.'
        )
    return stream


def check_hosted_stream() -> None:
    """In a workflow: fail early, with what to do, when the workflow hosts no `AgentEventStream`."""
    _hosted_stream()


async def publish_workflow_events(
    topic: EventStreamTopic, stream: AsyncIterable[pai_messages.AgentStreamEvent]
) -> AsyncIterator[pai_messages.AgentStreamEvent]:
    """`stream`, publishing each event that originates in workflow code to `topic` as it is pulled.

    A model's streamed events are skipped: the model-request activity that produced them published them live, and
    what workflow code sees of them is the finished response replayed.
    """
    hosted = _hosted_stream()
    async for event in stream:
        if not is_model_stream_event(event) and topic.selects(event):
            hosted._publish(topic.name, event)  # pyright: ignore[reportPrivateUsage]
        yield event


def publish_agent_result(topic: EventStreamTopic, result: AgentRunResult[Any]) -> None:
    """In workflow code: publish the run's terminal event (always, whatever the topic's `events` selects)."""
    _hosted_stream()._publish_result(topic.name, result)  # pyright: ignore[reportPrivateUsage]


def _unit_label(activity_type: str) -> str:
    name = activity_type.rsplit('__', 1)[-1]
    return 'model_request' if name.startswith('model_request') else name


def workflow_stream_event_handler(
    topic: str | EventStreamTopic,
    *,
    handler: EventStreamHandler[AgentDepsT] | None = None,
) -> EventStreamHandler[AgentDepsT]:
    """An event stream handler that publishes the events it is given to a Workflow Stream topic, from an activity.

    `event_stream_topic=` uses it inside the streamed model-request activity; on its own (as an
    `event_stream_handler`) it publishes only what that handler is given, always from activities, and publishes
    nothing of the terminal event. Outside an activity it publishes nothing and passes the events on.

    The events are buffered and sent to the workflow that scheduled the activity once per `batch_interval` (one
    signal each). An activity attempt after the first publishes a `UnitRetryEvent` before its events: what the earlier
    attempt published stays in the stream.

    Args:
        topic: The topic (or its name) to publish to.
        handler: A handler that sees the same events, after they were buffered for publishing.

    Raises:
        UserError: temporalio is older than 1.27.0.
    """
    coerced = coerce_event_stream_topic(topic)
    assert coerced is not None
    chosen: EventStreamTopic = coerced
    streams = _workflow_streams()

    async def publishing_handler(
        ctx: RunContext[AgentDepsT], stream: AsyncIterable[pai_messages.AgentStreamEvent]
    ) -> None:
        if not activity.in_activity():
            if handler is not None:
                await handler(ctx, stream)
            else:
                async for _ in stream:
                    pass
            return
        info = activity.info()
        if info.workflow_id is None or info.workflow_run_id is None:
            raise UserError(
                'A Workflow Stream event handler publishes to the workflow that scheduled its activity; this activity '
                'was started by a client, so there is no stream to publish to.'
            )
        temporal_client = activity.client()
        # Pinned to the run that scheduled the activity: a workflow id alone resolves to its latest run, which after
        # a reuse of the id is another execution.
        target = temporal_client.get_workflow_handle(info.workflow_id, run_id=info.workflow_run_id)
        publisher = streams.WorkflowStreamClient(target, client=temporal_client, batch_interval=chosen.batch_interval)
        topic_handle = publisher.topic(chosen.name)

        async def published(
            events: AsyncIterable[pai_messages.AgentStreamEvent],
        ) -> AsyncIterator[pai_messages.AgentStreamEvent]:
            async for event in events:
                if chosen.selects(event):
                    topic_handle.publish(event)
                yield event

        async with publisher:  # flushes every batch_interval, and what is left on leaving
            if info.attempt > 1:
                # Before anything of this attempt: the consumer drops the partial response it may be showing.
                publisher.topic(retry_topic_name(chosen.name)).publish(
                    UnitRetryEvent(unit=_unit_label(info.activity_type), attempt=info.attempt)
                )
            events = published(stream)
            try:
                if handler is not None:
                    await handler(ctx, events)
            finally:
                # A handler that stopped reading early does not stop the publishing.
                async for _ in events:
                    pass

    return publishing_handler


def stream_agent_events(
    client: Client,
    handle: WorkflowHandle[Any, Any],
    topic: str | EventStreamTopic,
    *,
    output_type: type[OutputDataT] = ANY_OUTPUT,
    from_offset: int = 0,
    poll_cooldown: timedelta = _DEFAULT_POLL_COOLDOWN,
) -> DurableAgentRunEvents[OutputDataT]:
    """Subscribe to the events a durable agent run publishes to a Workflow Stream topic.

    The returned iterator yields the run's events in order (and a `UnitRetryEvent` before the events of a
    model-request activity that runs again), ending with the `AgentRunResultEvent` that carries the result, which it
    acknowledges so that the workflow can finish. Its `offset` is the stream offset of the last event yielded:
    `from_offset=offset + 1` resumes after it. Use it as an async context manager, or call `aclose()`, when stopping
    early. The workflow's own result stays the authority on how the run ended: a run that fails publishes no terminal
    event, and the iterator then simply ends.

    Args:
        client: A Temporal client configured with `PydanticAIPlugin` (its payload converter decodes the events).
        handle: The handle of the workflow running the agent.
        topic: The topic (or its name) the agent publishes to.
        output_type: The agent's output type, to decode the result into.
        from_offset: The stream offset to start from, inclusive.
        poll_cooldown: How long to wait between polls when no new events are ready.

    Raises:
        UserError: `poll_cooldown` is not positive, or temporalio is older than 1.27.0.
    """
    if poll_cooldown <= timedelta(0):
        raise UserError(f'The Workflow Stream poll cooldown must be greater than zero, not {poll_cooldown!r}.')
    coerced = coerce_event_stream_topic(topic)
    assert coerced is not None
    streams = _workflow_streams()
    # Pinned to the execution the handle names, so that a reused workflow id cannot redirect the subscription;
    # `client=` lets the subscription follow a continue-as-new.
    run_id = handle.run_id or handle.first_execution_run_id
    pinned = client.get_workflow_handle(handle.id, run_id=run_id) if run_id else handle
    item_type = Annotated[
        pai_messages.AgentStreamEvent | _DurableAgentRunResultEvent[output_type] | UnitRetryEvent,
        pydantic.Discriminator('event_kind'),
    ]
    subscription = streams.WorkflowStreamClient(pinned, client=client).subscribe(
        [coerced.name, retry_topic_name(coerced.name)],
        from_offset=from_offset,
        result_type=cast('type[Any]', item_type),
        poll_cooldown=poll_cooldown,
    )
    # The acknowledgment follows a continue-as-new like the polls; its token names the execution it is meant for.
    acknowledge = client.get_workflow_handle(handle.id)

    async def items() -> AsyncGenerator[tuple[int, Any]]:
        async for item in subscription:
            yield item.offset, item.data

    item_iterator = items()

    async def on_result(event: AgentRunResultEvent[Any]) -> None:
        token = cast('_DurableAgentRunResultEvent[Any]', event).drain_token
        try:
            await acknowledge.signal(DRAINED_SIGNAL, token)
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return  # the workflow has finished (another consumer acknowledged first): nothing waits for this one
            # The consumer has the result: a failed acknowledgment only makes the workflow wait its drain timeout.
            warnings.warn(
                f'The terminal agent event could not be acknowledged; the workflow waits its `drain_timeout`: {error}',
                RuntimeWarning,
                stacklevel=2,
            )

    async def close() -> None:
        await item_iterator.aclose()
        await subscription.aclose()

    return DurableAgentRunEvents(item_iterator, on_result=on_result, close=close)
