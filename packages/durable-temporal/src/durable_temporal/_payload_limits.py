"""Payloads over Temporal's size limit fail the run at once, with an error that says what was too large.

Temporal refuses payloads over its blob size limit (2 MB unless the server is configured otherwise), and treats
the refusal as something a retry may fix. Measured on the dev server, a tool returning 3 MB never failed: the SDK
refused to complete the activity, the activity (and the tool) ran again with backoff, the workflow stayed RUNNING
and the caller saw nothing. Arguments are worse: an oversized activity input fails the *workflow task*, which no
retry policy bounds. The same input is produced on every attempt, so neither retry can succeed.

The interceptor here checks the payloads of the agent's activities before Temporal sees them:

- in workflow code, before an activity is scheduled: its arguments (messages of a model request, tool arguments,
  the run's deps). Too large raises `UserError`, which `PydanticAIPlugin` makes fail the workflow;
- in the activity, before it completes: its result (a model response, a tool result). Too large raises a
  non-retryable `ApplicationError`, so the activity fails once and the workflow fails with it;
- when a workflow that lists agents in `__pydantic_ai_agents__` returns: its result (e.g. a whole message history).
  Too large raises `UserError`, failing the workflow instead of retrying its task forever.

Only the agent's own activities and workflows are checked (recognised by their argument type, and by
`__pydantic_ai_agents__`); other activities and workflows keep Temporal's behaviour. A workflow's input is refused by
the server when the client starts it, so the caller sees that error at once. With a claim check (or Temporal's external storage) configured, large payloads leave the history and
nothing is checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic_ai.exceptions import UserError
from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    Interceptor,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from ._binding import EventStreamHandlerParams
from ._config import PAYLOAD_TOO_LARGE_ERROR_TYPE
from ._model import CancelSuspendedResponseParams, CompactMessagesParams, ModelRequestParams
from ._toolset import CallToolParams, GetToolsParams

__all__ = (
    'DEFAULT_PAYLOAD_SIZE_LIMIT',
    'PAYLOAD_TOO_LARGE_ERROR_TYPE',
    'PayloadLimitInterceptor',
    'PayloadLimits',
)

DEFAULT_PAYLOAD_SIZE_LIMIT = 2 * 1024 * 1024
"""Temporal's default blob size limit (`limit.blobSize.error` of the server, and of Temporal Cloud): 2 MiB."""


_ADVICE = (
    'Keep large data out of what crosses the activity boundary: return or pass a reference instead (a file path, '
    'a URL, an object-store key) and load the data where it is needed; or keep large payloads out of the workflow '
    'history with a claim-check store, `PydanticAIPlugin(claim_check=FileClaimCheckStore(...))` or your own '
    '`ClaimCheckStore` (see "Large payloads" in the Temporal guide). If your payload codec compresses payloads or '
    'your server allows larger ones, set `PydanticAIPlugin(payload_size_limit=...)`.'
)


@dataclass
class PayloadLimits:
    """What the interceptor checks; the plugin sets `offloaded` when large payloads leave the history."""

    limit: int | None = DEFAULT_PAYLOAD_SIZE_LIMIT
    offloaded: bool = False

    @property
    def active_limit(self) -> int | None:
        """The limit to check against, or `None` when nothing is checked."""
        return None if self.offloaded else self.limit


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _size(size: int) -> str:
    return f'{size / (1024 * 1024):.1f} MiB ({size} bytes)'


def _units(args: Sequence[Any]) -> tuple[str, str] | None:
    """What the arguments and the result of one of our activities are, for messages; `None` for other activities."""
    params = args[0] if args else None
    if isinstance(params, CallToolParams):
        return f'the arguments of tool {params.name!r}', f'the result of tool {params.name!r}'
    if isinstance(params, ModelRequestParams):
        return 'the messages of a model request', 'the model response'
    if isinstance(params, CompactMessagesParams):
        return 'the messages to compact', 'the compacted messages'
    if isinstance(params, GetToolsParams):
        return 'the tool listing request', 'the tool definitions'
    if isinstance(params, EventStreamHandlerParams):
        return 'the stream events', 'the event stream handler result'
    if isinstance(params, CancelSuspendedResponseParams):
        return 'the suspended response to cancel', 'the cancellation result'
    return None


def check_activity_arguments(activity_name: str, args: Sequence[Any], limit: int) -> None:
    """Raise `UserError` if the encoded arguments of an activity about to be scheduled are over `limit` bytes."""
    units = _units(args)
    if units is None:
        return
    payloads = workflow.payload_converter().to_payloads(list(args))
    sizes = [payload.ByteSize() for payload in payloads]
    total = sum(sizes)
    if total <= limit:
        return
    deps_size = sizes[1] if len(sizes) > 1 else 0
    detail = f"; the run's deps are {_size(deps_size)} of it" if deps_size > limit // 2 else ''
    raise UserError(
        f'{_sentence(units[0])} (activity {activity_name!r}) are {_size(total)} once serialized'
        f'{detail}, over the Temporal payload size limit of {_size(limit)}: Temporal would refuse to schedule the '
        f'activity and retry the workflow task forever, so the run fails now. {_ADVICE}'
    )


def check_activity_result(result: Any, args: Sequence[Any], limit: int) -> None:
    """Raise a non-retryable `ApplicationError` if the encoded result of one of our activities is over `limit`."""
    units = _units(args)
    if units is None:
        return
    [payload] = activity.payload_converter().to_payloads([result])
    size = payload.ByteSize()
    if size <= limit:
        return
    name = activity.info().activity_type
    raise ApplicationError(
        f'{_sentence(units[1])} (activity {name!r}) is {_size(size)} once serialized, over the '
        f'Temporal payload size limit of {_size(limit)}: Temporal would refuse to complete the activity and run it '
        f'again forever, so the run fails now. {_ADVICE}',
        type=PAYLOAD_TOO_LARGE_ERROR_TYPE,
        non_retryable=True,
    )


def check_workflow_result(workflow_class: type, result: Any, limit: int) -> None:
    """Raise `UserError` if the encoded result of a workflow that runs agents is over `limit` bytes."""
    [payload] = workflow.payload_converter().to_payloads([result])
    size = payload.ByteSize()
    if size <= limit:
        return
    raise UserError(
        f'The result of workflow {workflow_class.__qualname__} is {_size(size)} once serialized, over the Temporal '
        f'payload size limit of {_size(limit)}: Temporal would refuse to complete the workflow and retry its task '
        'forever, so the run fails now. Return less from the workflow (the output rather than the whole message '
        'history, or a reference to data stored elsewhere), or keep large payloads out of the workflow history with '
        'a claim-check store, `PydanticAIPlugin(claim_check=FileClaimCheckStore(...))` (see "Large payloads" in the '
        'Temporal guide).'
    )


class _ActivityInbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, limits: PayloadLimits) -> None:
        super().__init__(next)
        self._limits = limits

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        result = await super().execute_activity(input)
        limit = self._limits.active_limit
        if limit is not None:
            check_activity_result(result, input.args, limit)
        return result


class _WorkflowOutbound(WorkflowOutboundInterceptor):
    def __init__(self, next: WorkflowOutboundInterceptor, limits: PayloadLimits) -> None:
        super().__init__(next)
        self._limits = limits

    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        limit = self._limits.active_limit
        # Measuring serializes the arguments once more; on replay the activity is already in the history (its
        # arguments were accepted when it was scheduled), so the cost is paid on first execution only.
        if limit is not None and not workflow.unsafe.is_replaying():
            check_activity_arguments(input.activity, input.args, limit)
        return super().start_activity(input)


class PayloadLimitInterceptor(Interceptor):
    """Worker interceptor that checks the payloads of the agent's activities against `limits`."""

    def __init__(self, limits: PayloadLimits) -> None:
        self.limits = limits

        class _WorkflowInbound(WorkflowInboundInterceptor):
            # A class per interceptor: Temporal constructs it for each workflow, with only the next interceptor.
            def init(self, outbound: WorkflowOutboundInterceptor) -> None:
                super().init(_WorkflowOutbound(outbound, limits))

            async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
                result = await super().execute_workflow(input)
                limit = limits.active_limit
                if limit is not None and hasattr(input.type, '__pydantic_ai_agents__'):
                    check_workflow_result(input.type, result, limit)
                return result

        self._workflow_interceptor_class = _WorkflowInbound

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        """Check the results of the agent's activities."""
        return _ActivityInbound(next, self.limits)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        """Check the arguments of the agent's activities when workflow code schedules them."""
        return self._workflow_interceptor_class
