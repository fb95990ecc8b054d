"""Large `deps` cross into a workflow's activities once, not with every activity.

Every activity needs the run's `deps`. The reference sends them with each one, so 200 KB of deps and 20 parallel
tool calls made one workflow-task completion of 4 MB (over gRPC's limit), and every activity added the deps to the
history again. Here deps whose payload is over `INLINE_LIMIT` bytes are sent with the first activity of the
workflow that needs them; later activities carry only their digest (in the serialized run context, under
`DIGEST_KEY`) and `None` in place of the deps. An activity finds the deps in this worker process's cache, or else in
the workflow history, in the input of the activity that carried them. Small deps travel inline as before.

The cache holds the encoded payload, not the object: every activity decodes its own copy, so a tool that changes
its `deps` never changes them for another activity, exactly as when they were sent inline.

The digest is also what the activity checks: deps found in the history are used only if their payload (as the
workflow encoded it) has the digest the workflow sent, and a worker caches deps it was sent only if they encode
to that digest again (otherwise the next activity reads them from the history and checks them there). Deps that do
not match fail the activity without retry, naming the workflow.

Activity inputs are not part of what a replay checks, so this changes no command and needs no patch marker; a
workflow started by the reference or by durable-temporal 0.1 (deps always inline) continues with references.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, cast

from pydantic_ai.tools import RunContext
from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.exceptions import ApplicationError

from durable_kernel import PartialRunContext

from ._workflow_state import PerWorkflow

__all__ = ('DEPS_MISMATCH_ERROR_TYPE', 'DIGEST_KEY', 'INLINE_LIMIT', 'deps_for_activity', 'deps_in_activity')

DIGEST_KEY = '__durable_deps_digest__'
"""The key of the serialized run context that names the deps by the digest of their payload."""

INLINE_LIMIT = 2048
"""Deps whose payload is at most this many bytes are sent with every activity."""

DEPS_MISMATCH_ERROR_TYPE = 'DurableTemporalDepsMismatch'
"""The `ApplicationError.type` of an activity whose deps, found in the history, are not the ones the workflow named."""

_CACHE_SIZE = 128

# --- workflow side ----------------------------------------------------------------------------------------------

_sent_by_workflow: PerWorkflow[set[str]] = PerWorkflow(set)


def deps_for_activity(
    context_type: type[PartialRunContext[Any]], ctx: RunContext[Any], *, local: bool = False
) -> tuple[Any, Any]:
    """The serialized run context and the deps argument of an activity about to be scheduled by workflow code.

    A local activity (`local=True`) is always sent its deps inline: its input is not recorded in the history (so
    inline deps cost no history bytes), and an activity that was sent only a digest finds the deps in the inputs of
    scheduled activities, which a local activity is not. It also never counts as having carried them.

    The deps sent are `context_type.serialize_deps(ctx.deps)`: the reference of the agent's `DepsResolver`, if it
    has one, so that live clients and credentials never reach the history.

    Returns:
        `(serialized_run_context, deps)` unchanged for small deps; for large ones the context names them by digest,
        and the deps are `None` unless this is the first activity of the workflow to need them.
    """
    serialized_run_context: Any = context_type.serialize_run_context(ctx)
    deps = context_type.serialize_deps(ctx.deps)
    if local or deps is None or not isinstance(serialized_run_context, Mapping):
        return serialized_run_context, deps
    [payload] = workflow.payload_converter().to_payloads([deps])
    if len(payload.data) <= INLINE_LIMIT:
        return cast('Mapping[str, Any]', serialized_run_context), deps
    digest = _digest(payload)
    context = {**cast('Mapping[str, Any]', serialized_run_context), DIGEST_KEY: digest}
    sent = _sent_by_workflow.current()
    if digest in sent:
        return context, None
    sent.add(digest)
    return context, deps


def _digest(payload: Payload) -> str:
    hasher = hashlib.sha256(payload.metadata.get('encoding', b''))
    hasher.update(payload.data)
    return hasher.hexdigest()[:32]


# --- activity side ----------------------------------------------------------------------------------------------

_cache: OrderedDict[tuple[str, str], Payload] = OrderedDict()


async def deps_in_activity(serialized_run_context: Any, deps: Any, deps_type: Any) -> tuple[Any, Any]:
    """The serialized run context (without the digest) and the deps of an activity, fetched if they were not sent.

    Raises:
        ApplicationError: The deps are in neither this worker's cache nor the workflow history (non-retryable).
    """
    if not isinstance(serialized_run_context, Mapping) or DIGEST_KEY not in serialized_run_context:
        return cast(Any, serialized_run_context), deps
    context = dict(cast('Mapping[str, Any]', serialized_run_context))
    digest = str(context.pop(DIGEST_KEY))
    converter = activity.payload_converter()
    key = (activity.info().workflow_run_id or '', digest)
    if deps is not None:
        [payload] = converter.to_payloads([deps])
        # Decoded and encoded again, deps may not give the workflow's bytes back (a field that coerces its value):
        # then they are not cached, and an activity that needs them reads the workflow's payload from the history.
        if _digest(payload) == digest:
            _cache[key] = payload
            _trim()
        return context, deps
    payload = _cache.get(key)
    if payload is None:
        payload = await _payload_from_history(digest)
        _cache[key] = payload
        _trim()
    else:
        _cache.move_to_end(key)
    [value] = converter.from_payloads([payload], [deps_type])
    return context, value


def _trim() -> None:
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)


async def _payload_from_history(digest: str) -> Payload:
    """The encoded deps of the activity that carried the deps with `digest`, from the workflow history."""
    info = activity.info()
    workflow_id = info.workflow_id or ''
    client = activity.client()
    handle = client.get_workflow_handle(workflow_id, run_id=info.workflow_run_id)
    converter = client.data_converter
    async for event in handle.fetch_history_events():
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        payloads = event.activity_task_scheduled_event_attributes.input.payloads
        if len(payloads) < 2:
            continue
        if converter.payload_codec is None and DIGEST_KEY.encode() not in payloads[0].data:
            continue  # cheap skip of the activities that carry no digest
        [params] = await converter.decode(payloads[:1])
        context: Any = (
            cast('Mapping[str, Any]', params).get('serialized_run_context') if isinstance(params, Mapping) else None
        )
        if not isinstance(context, Mapping) or cast('Mapping[str, Any]', context).get(DIGEST_KEY) != digest:
            continue
        # The payload as the workflow's payload converter made it (before the codec): what the digest was taken of.
        [payload] = (
            payloads[1:2] if converter.payload_codec is None else await converter.payload_codec.decode(payloads[1:2])
        )
        if converter.payload_converter.from_payloads([payload])[0] is None:
            continue  # this activity named the deps without carrying them
        if _digest(payload) != digest:
            raise ApplicationError(
                f'The deps of this activity of workflow {workflow_id!r} were sent with an earlier activity, but the '
                'deps recorded there are not the ones the workflow named (their digests differ). Was the history '
                'changed outside of the workflow? Start the workflow again.',
                type=DEPS_MISMATCH_ERROR_TYPE,
                non_retryable=True,
            )
        return payload
    raise ApplicationError(
        f'The deps of this activity were sent with an earlier activity of workflow {workflow_id!r}, which is not in '
        'its history. Was the history changed outside of the workflow? Start the workflow again.',
        type='DurableTemporalDepsMissing',
        non_retryable=True,
    )
