"""Model activities receive only the messages that are new since the previous model activity of the workflow.

A model is stateless, so every request needs the whole conversation. Sending it whole to every model activity (what
the reference does) records the conversation again in the workflow history at every turn: the history grows with the
square of the number of turns and a long run hits Temporal's history limit. Here the workflow sends each model
activity a *delta*: a reference to an earlier model activity of the same workflow (`history_base`), how many of that
activity's messages (its request followed by its response) open the new request (`history_keep`), and the messages
that follow them. Every message is then recorded in the history once, and the history grows linearly.

The activity rebuilds the whole request from a cache of the requests this worker process has handled, or, when
another worker (or a worker since restarted) handled the earlier one, from the workflow history itself, which holds
every model activity's input and result. Nothing outside Temporal is needed.

An earlier model activity is named by its position among the model activities that this agent scheduled in the
workflow (`history_index`): the workflow counts them as it schedules them, and the activity counts the same events
in the history. Positions do not depend on what the activities were sent, so a workflow that the reference or
durable-temporal 0.1 started (whole conversations, no positions) continues with deltas based on what they recorded.
Activity inputs are not part of what a replay checks, so this changes no command and needs no patch marker.

The workflow decides what to keep by comparing the serialized messages, never object identity, so a history
processor that rewrites or mutates messages simply shortens the common prefix.

The positions are a count the workflow keeps, and the activity trusts nothing it did not receive: the workflow also
sends a digest of the messages it means the activity to reuse (`history_digest`, over a digest per message, see
`message_digest`), and the activity compares it with the same digest of the messages it rebuilt. Each side digests
every message once (the workflow when it first sends or receives it, the activity when it rebuilds or caches it) and
keeps the per-message digests, so a request costs the digests of its new messages only, without serializing them. A
difference fails the activity without retry, naming the workflow. An activity scheduled by an older worker has no
digest: it is accepted as before.

A digest of the serialized messages would not do: replayed on another worker, workflow code builds the requests
again with new timestamps and run ids (the activity rebuilds the recorded ones), and a dynamic system prompt or
instructions may come out differently.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import TypeAdapter
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.exceptions import ApplicationError

from ._workflow_state import PerWorkflow

__all__ = (
    'HISTORY_MISMATCH_ERROR_TYPE',
    'Delta',
    'HistoryBase',
    'DeltaParams',
    'Rebuilt',
    'SentHistories',
    'WorkflowHistories',
    'rebuild_messages',
    'remember_request',
)

_MESSAGE_ADAPTER: TypeAdapter[ModelMessage] = TypeAdapter(ModelMessage)
_RUNS_REMEMBERED = 8
_CARRIED = '\x00carried'
"""The key of the base carried over from an earlier workflow run (never an agent run id)."""
_CACHE_SIZE = 512

HISTORY_MISMATCH_ERROR_TYPE = 'DurableTemporalHistoryMismatch'
"""The `ApplicationError.type` of a model activity whose rebuilt conversation is not the one the workflow sent."""


class DeltaParams(Protocol):
    """The fields of a model activity's argument that carry a message delta."""

    messages: list[ModelMessage]
    history_index: int | None
    history_base: int | None
    history_keep: int
    history_digest: str | None
    history_run_id: str | None


def with_run_metadata(response: ModelResponse, messages: Sequence[ModelMessage]) -> ModelResponse:
    """`response` as the agent records it in the run's history: with the request's `run_id` and `conversation_id`.

    The agent fills these in after the model request, in workflow code; both sides fill them the same way from the
    request, so that a conversation rebuilt by the activity equals the one the workflow holds.
    """
    request = next((message for message in reversed(messages) if isinstance(message, ModelRequest)), None)
    if request is None:
        return response
    return dataclasses.replace(
        response,
        run_id=response.run_id or request.run_id,
        conversation_id=response.conversation_id or request.conversation_id,
    )


_DIGESTED_PARTS = frozenset({'user-prompt', 'text', 'tool-call', 'tool-return', 'retry-prompt'})
"""The part kinds a message digest covers: named alike by pydantic-ai 1.107 and 2.x."""


def message_digest(message: ModelMessage) -> bytes:
    """The digest of what identifies a message in a conversation, the same on every worker that rebuilds it.

    It covers the message's kind and, for its prompt, text, tool-call, tool-return and retry-prompt parts, their
    kind, tool name and call id and their text (when it is text). It leaves out what the agent sets anew when a
    workflow is replayed (timestamps, run and conversation ids, a retry prompt's generated call id), instructions and
    system prompts (which a function may compute differently on replay; the model reads the latest request's), and
    what pydantic-ai 1.107 and 2.x serialize differently, so workers of both lines agree. Tool call ids are random per
    call, so a conversation built on the wrong base does not pass.
    """
    fields = [message.kind]
    for part in message.parts:
        if part.part_kind not in _DIGESTED_PARTS:
            continue
        tool_name = getattr(part, 'tool_name', None)
        content = getattr(part, 'content', None)
        call_id = getattr(part, 'tool_call_id', None) if tool_name is not None else None
        fields.extend((part.part_kind, tool_name or '', call_id or '', content if isinstance(content, str) else ''))
    return hashlib.sha256('\x1f'.join(fields).encode()).digest()


def prefix_digest(digests: Sequence[bytes]) -> str:
    """The digest of a conversation prefix, from the digests of its messages."""
    return hashlib.sha256(b''.join(digests)).hexdigest()


def _digests(messages: Sequence[ModelMessage]) -> list[bytes]:
    return [message_digest(message) for message in messages]


# --- workflow side ----------------------------------------------------------------------------------------------


@dataclass
class _Sent:
    index: int
    fingerprints: list[bytes]
    digests: list[bytes]
    run_id: str | None = None
    """The workflow run whose model activity this is, when it is an earlier run of the chain (continue-as-new)."""


@dataclass
class HistoryBase:
    """Where a workflow run that continued as new left an agent's conversation.

    The next run's first model activity builds on it instead of being sent the whole conversation again.
    """

    run_id: str
    """The workflow run that scheduled the model activity."""
    index: int
    """The activity's position among the agent's model activities of that run."""
    length: int
    """How many messages its conversation (request, then response) has: the first `length` carried messages."""


@dataclass
class Delta:
    """What to send a model activity: the new messages and where the ones before them were already sent."""

    messages: list[ModelMessage]
    index: int
    base: int | None
    keep: int
    fingerprints: list[bytes] = field(repr=False)
    digests: list[bytes] = field(repr=False)
    digest: str | None
    """The digest of the kept messages (`None` without a base)."""
    run_id: str | None = None
    """The earlier workflow run of the base (`None`: this run)."""


class SentHistories:
    """What a workflow's model activities of one agent were sent, by agent run (the latest few runs)."""

    def __init__(self) -> None:
        self._by_run: OrderedDict[str, _Sent] = OrderedDict()
        self._scheduled = 0

    def delta(self, messages: Sequence[ModelMessage], run_id: str) -> Delta:
        """The delta for a request of run `run_id` (based on that run's last request, else the workflow's last).

        Call it right before scheduling the activity: it counts the activity.
        """
        delta = self._delta_on_base(messages, run_id, self._scheduled)
        self._scheduled += 1
        return delta

    def count_delta(self, messages: Sequence[ModelMessage], run_id: str) -> Delta:
        """The delta for a token count of run `run_id`, on the same base as a request's (see `delta`).

        A count is not a model request: it takes no position (`Delta.index` is the next request's, unused), and no
        later request builds on it, so the positions the activities count in the history stay those of the requests.
        """
        return self._delta_on_base(messages, run_id, self._scheduled)

    def _delta_on_base(self, messages: Sequence[ModelMessage], run_id: str, index: int) -> Delta:
        fingerprints = [_MESSAGE_ADAPTER.dump_json(message) for message in messages]
        base = self._by_run.get(run_id) or next(reversed(self._by_run.values()), None)
        keep = 0
        if base is not None:
            limit = min(len(fingerprints), len(base.fingerprints))
            while keep < limit and fingerprints[keep] == base.fingerprints[keep]:
                keep += 1
        # The kept messages serialize as the base's did: their digests are the base's, computed once.
        kept = base.digests[:keep] if base is not None else []
        return Delta(
            messages=list(messages[keep:]),
            index=index,
            base=base.index if base is not None and keep else None,
            keep=keep,
            fingerprints=fingerprints,
            digests=[*kept, *_digests(messages[keep:])],
            digest=prefix_digest(kept) if keep else None,
            run_id=base.run_id if base is not None and keep else None,
        )

    @property
    def scheduled(self) -> int:
        """How many model activities of the agent this workflow run scheduled."""
        return self._scheduled

    def latest(self, workflow_run_id: str) -> HistoryBase | None:
        """The model activity the next request would build on, named for a later run of the workflow."""
        last = next(reversed(self._by_run.values()), None)
        if last is None:
            return None
        return HistoryBase(last.run_id or workflow_run_id, last.index, len(last.digests))

    def seed(self, base: HistoryBase, messages: Sequence[ModelMessage]) -> None:
        """Let the first request of this run build on `base`, a model activity of an earlier run of the workflow.

        `messages` are the carried conversation: its first `base.length` messages are that activity's conversation.
        Should they not serialize as they did there, the delta keeps fewer of them (it compares the serialized
        messages), and the activity checks the digest of what it reuses.
        """
        if self._by_run or base.length > len(messages):
            return
        kept = messages[: base.length]
        self._by_run[_CARRIED] = _Sent(
            base.index, [_MESSAGE_ADAPTER.dump_json(message) for message in kept], _digests(kept), base.run_id
        )

    def sent(self, delta: Delta, messages: Sequence[ModelMessage], response: ModelResponse, run_id: str) -> None:
        """Record that the activity of `delta` completed with `response`: later requests may build on both."""
        filled = with_run_metadata(response, messages)
        self._by_run[run_id] = _Sent(
            delta.index,
            [*delta.fingerprints, _MESSAGE_ADAPTER.dump_json(filled)],
            [*delta.digests, message_digest(filled)],
        )
        self._by_run.move_to_end(run_id)
        while len(self._by_run) > _RUNS_REMEMBERED:
            self._by_run.popitem(last=False)


class WorkflowHistories(PerWorkflow[SentHistories]):
    """`SentHistories` per running workflow instance (forgotten with the instance when the worker evicts it)."""

    def __init__(self) -> None:
        super().__init__(SentHistories)


# --- activity side ----------------------------------------------------------------------------------------------

_CacheKey = tuple[str, str, int]
"""Workflow run id, first model activity name of the agent, position."""


@dataclass
class Rebuilt:
    """A conversation and the digests of its messages."""

    messages: list[ModelMessage]
    digests: list[bytes] = field(repr=False)


_cache: OrderedDict[_CacheKey, Rebuilt] = OrderedDict()


def _cache_get(key: _CacheKey) -> Rebuilt | None:
    found = _cache.get(key)
    if found is not None:
        _cache.move_to_end(key)
    return found


def _cache_put(key: _CacheKey, conversation: Rebuilt) -> None:
    _cache[key] = conversation
    _cache.move_to_end(key)
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)


async def rebuild_messages(params: DeltaParams, params_type: type[Any], activity_names: Sequence[str]) -> Rebuilt:
    """The whole conversation of a model activity's request (its `messages` when it was sent whole).

    Args:
        params: The activity's argument.
        params_type: The argument's class, to decode the earlier model activities' arguments from the history.
        activity_names: The names of the agent's model activities (those counted by position).

    Raises:
        ApplicationError: The base is in neither this worker's cache nor the workflow history, or the messages
            reused from it are not those the workflow meant (both non-retryable).
    """
    if params.history_base is None:
        return Rebuilt(list(params.messages), _digests(params.messages))
    base = await _base_conversation(params, params_type, activity_names, activity.info().workflow_run_id or '')
    kept = base.digests[: params.history_keep]
    if params.history_digest is not None and prefix_digest(kept) != params.history_digest:
        workflow_id = activity.info().workflow_id or ''
        raise ApplicationError(
            f'The model request of workflow {workflow_id!r} reuses {params.history_keep} messages of model activity '
            f'#{params.history_base} of this agent, but the messages this worker rebuilt differ from those the '
            'workflow sent (their digests differ), so the model would see another conversation. Was the history '
            'changed outside of the workflow? Start the workflow again.',
            type=HISTORY_MISMATCH_ERROR_TYPE,
            non_retryable=True,
        )
    return Rebuilt([*base.messages[: params.history_keep], *params.messages], [*kept, *_digests(params.messages)])


def remember_request(
    params: DeltaParams, activity_names: Sequence[str], request: Rebuilt, response: ModelResponse
) -> None:
    """Cache what the next request of the workflow may build on: this request's messages and its response.

    The response is cached as the workflow will see it (through the payload converter), so a conversation rebuilt
    from the cache is the one that would have been sent whole.
    """
    if params.history_index is None:
        return
    converter = activity.payload_converter()
    [payload] = converter.to_payloads([response])
    [seen] = converter.from_payloads([payload], [ModelResponse])
    filled = with_run_metadata(seen, request.messages)
    _cache_put(
        _key(activity_names, params.history_index),
        Rebuilt([*request.messages, filled], [*request.digests, *_digests([filled])]),
    )


def _key(activity_names: Sequence[str], index: int, run_id: str | None = None) -> _CacheKey:
    return (run_id or activity.info().workflow_run_id or '', activity_names[0], index)


async def _base_conversation(
    params: DeltaParams, params_type: type[Any], activity_names: Sequence[str], run_id: str
) -> Rebuilt:
    """The conversation of the model activity `params` builds on: of this workflow run, or of an earlier one."""
    assert params.history_base is not None
    base_run = getattr(params, 'history_run_id', None) or run_id
    base = _cache_get(_key(activity_names, params.history_base, base_run))
    if base is None:
        base = await _conversation_from_history(params.history_base, params_type, activity_names, base_run)
    return base


async def _conversation_from_history(
    index: int, params_type: type[Any], activity_names: Sequence[str], run_id: str
) -> Rebuilt:
    """Rebuild the conversation (request and response) of the agent's `index`-th model activity from a history.

    The history is workflow run `run_id`'s: this run's, or an earlier one's for a base carried over a continue-as-new.
    """
    info = activity.info()
    workflow_id = info.workflow_id or ''
    client = activity.client()
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    converter = client.data_converter
    names = set(activity_names)
    positions: dict[int, tuple[int, DeltaParams]] = {}  # scheduled event id -> (position, argument)
    conversations: dict[int, Rebuilt] = {}
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attributes = event.activity_task_scheduled_event_attributes
            if attributes.activity_type.name in names:
                [params] = await converter.decode(attributes.input.payloads[:1], [params_type])
                positions[event.event_id] = (len(positions), params)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            attributes = event.activity_task_completed_event_attributes
            found = positions.get(attributes.scheduled_event_id)
            if found is None:
                continue
            position, params = found
            [response] = await converter.decode(attributes.result.payloads[:1], [ModelResponse])
            base: Rebuilt | None
            if params.history_base is None:
                base = None
            elif getattr(params, 'history_run_id', None) not in (None, run_id):
                # The first activity after a continue-as-new builds on the previous run's conversation.
                base = await _base_conversation(params, params_type, activity_names, run_id)
            else:
                base = conversations.get(params.history_base)
            keep = params.history_keep if base is not None else 0
            request = [*(base.messages[:keep] if base else []), *params.messages]
            added = [*params.messages, with_run_metadata(response, request)]
            conversation = Rebuilt([*request, added[-1]], [*(base.digests[:keep] if base else []), *_digests(added)])
            conversations[position] = conversation
            _cache_put(_key(activity_names, position, run_id), conversation)
            if position == index:
                return conversation
    raise ApplicationError(
        f'The model request builds on the messages of model activity #{index} of this agent, which did not complete '
        f'in the history of workflow {workflow_id!r}. Was the history changed outside of the workflow? Start the '
        'workflow again.',
        type='DurableTemporalHistoryBaseMissing',
        non_retryable=True,
    )
