"""Tool control flow (`ModelRetry`, `ApprovalRequired`, `CallDeferred`, 2.x's `ToolFailed`) carried across a durable boundary as data.

An engine retries a step/activity/task that raises. These exceptions are not failures of the unit but instructions to
the agent loop, so they must never reach the engine as errors (a retry would run the tool body again). The tool
call is wrapped with [`capture_tool_outcome`][durable_kernel.capture_tool_outcome] inside the durable unit, the
resulting [`ToolOutcome`][durable_kernel.ToolOutcome] is recorded by the engine like any other result, and the
agent loop calls [`unwrap_tool_outcome`][durable_kernel.unwrap_tool_outcome] to raise the same exception again.

The shapes (`kind` values and field names) match the reference implementation's Temporal payloads, so histories
recorded by it decode into these classes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, is_dataclass
from typing import Annotated, Any, ClassVar, Literal, TypeAlias, cast

import pydantic
import pydantic_core
from pydantic import Discriminator, Tag
from pydantic_ai import exceptions as pai_exceptions
from pydantic_ai.exceptions import ApprovalRequired, CallDeferred, ModelRetry, UserError
from pydantic_ai.messages import ToolReturn, ToolReturnContent

from ._compat import RecordsContentFiles

__all__ = (
    'ToolApprovalRequired',
    'ToolCallDeferred',
    'ToolFailureReported',
    'ToolOutcome',
    'ToolRetryRequested',
    'ToolReturned',
    'capture_tool_outcome',
    'outcome_from_exception',
    'unwrap_recorded_tool_result',
    'unwrap_tool_outcome',
)


@dataclass
class ToolRetryRequested:
    """The tool raised [`ModelRetry`][pydantic_ai.exceptions.ModelRetry]."""

    message: str
    kind: Literal['model_retry'] = 'model_retry'


@dataclass
class ToolApprovalRequired:
    """The tool raised [`ApprovalRequired`][pydantic_ai.exceptions.ApprovalRequired]."""

    metadata: dict[str, Any] | None = None
    kind: Literal['approval_required'] = 'approval_required'


@dataclass
class ToolCallDeferred:
    """The tool raised [`CallDeferred`][pydantic_ai.exceptions.CallDeferred]."""

    metadata: dict[str, Any] | None = None
    kind: Literal['call_deferred'] = 'call_deferred'


@dataclass
class ToolFailureReported:
    """The tool raised pydantic-ai 2.x's `ToolFailed`: a terminal failure the model sees as a failed tool result."""

    message: str
    kind: Literal['tool_failed'] = 'tool_failed'


_TOOL_FAILED: type[Exception] | None = getattr(pai_exceptions, 'ToolFailed', None)
# pydantic-ai 2.x's `ToolFailed` (absent from 1.107). Raised in a unit, it would fail the unit (and be retried) instead
# of reaching the agent loop, which turns it into a failed tool result.
_CONTROL_FLOW: tuple[type[Exception], ...] = (
    ModelRetry,
    ApprovalRequired,
    CallDeferred,
    *((_TOOL_FAILED,) if _TOOL_FAILED is not None else ()),
)


# While a `ToolReturned` is validated, whether its payload says the result is a `ToolReturn` (True), plain content
# (False) or does not say (None: payloads written before the flag existed). Outside validation (serializing):
# 'not-validating', and only a real `ToolReturn` instance is one.
_payload_says_tool_return: ContextVar[bool | Literal['not-validating'] | None] = ContextVar(
    '_payload_says_tool_return', default='not-validating'
)


def _tag_result(value: Any) -> str:
    if isinstance(value, ToolReturn):
        return 'tool-return'
    flag = _payload_says_tool_return.get()
    if flag == 'not-validating':
        return 'content'
    if flag is None:
        # Old payloads: only a mapping tagged as a `ToolReturn` is one.
        is_tagged = isinstance(value, Mapping) and cast(Mapping[str, Any], value).get('kind') == 'tool-return'
        return 'tool-return' if is_tagged else 'content'
    return 'tool-return' if flag else 'content'


_ToolResult: TypeAlias = Annotated[
    Annotated[ToolReturn, Tag('tool-return')] | Annotated[ToolReturnContent, Tag('content')],
    Discriminator(_tag_result),
]


@dataclass
class ToolReturned(RecordsContentFiles):
    """The tool returned normally: `result` is its return value (content, or a [`ToolReturn`][pydantic_ai.messages.ToolReturn])."""

    _content_field: ClassVar[str] = 'result'

    result: _ToolResult
    kind: Literal['tool_return'] = 'tool_return'
    is_tool_return: bool | None = None
    """Whether `result` is a `ToolReturn` rather than content that happens to look like one."""

    def __post_init__(self) -> None:
        if self.is_tool_return is None:
            self.is_tool_return = isinstance(self.result, ToolReturn)

    @pydantic.model_validator(mode='wrap')
    @classmethod
    def _read_result_flag(cls, value: Any, handler: pydantic.ModelWrapValidatorHandler[Any]) -> Any:
        flag = cast(Mapping[str, Any], value).get('is_tool_return') if isinstance(value, Mapping) else None
        token = _payload_says_tool_return.set(flag if isinstance(flag, bool) else None)
        try:
            return handler(value)
        finally:
            _payload_says_tool_return.reset(token)


ToolOutcome: TypeAlias = Annotated[
    ToolReturned | ToolRetryRequested | ToolApprovalRequired | ToolCallDeferred | ToolFailureReported,
    Discriminator('kind'),
]
"""What a tool call produced, as data: serializable by pydantic and by pickle."""


def outcome_from_exception(error: Exception) -> ToolOutcome:
    """Turn a control-flow exception into its data form.

    Args:
        error: The exception the tool raised: `ModelRetry`, `ApprovalRequired`, `CallDeferred` or (2.x) `ToolFailed`.

    Returns:
        The matching outcome.
    """
    if _TOOL_FAILED is not None and isinstance(error, _TOOL_FAILED):
        return ToolFailureReported(message=cast(Any, error).message)
    if isinstance(error, ModelRetry):
        return ToolRetryRequested(message=error.message)
    if isinstance(error, ApprovalRequired):
        return ToolApprovalRequired(metadata=error.metadata)
    if isinstance(error, CallDeferred):
        return ToolCallDeferred(metadata=error.metadata)
    raise TypeError(f'not a tool control-flow exception: {error!r}')


async def capture_tool_outcome(call: Awaitable[Any]) -> ToolOutcome:
    """Await a tool call and return its outcome, turning control-flow exceptions into data.

    Any other exception propagates, so the engine can retry real failures.

    Args:
        call: The awaitable that runs the tool.

    Returns:
        The outcome.
    """
    try:
        result = await call
    except _CONTROL_FLOW as error:
        return outcome_from_exception(error)
    return ToolReturned(result=result)


def unwrap_tool_outcome(outcome: ToolOutcome) -> Any:
    """Return the tool's result, or raise the control-flow exception the tool raised.

    Args:
        outcome: An outcome made by [`capture_tool_outcome`][durable_kernel.capture_tool_outcome].

    Returns:
        The tool's return value.

    Raises:
        ModelRetry: The tool asked the model to retry.
        ApprovalRequired: The tool call needs approval.
        CallDeferred: The tool call is deferred.
        ToolFailed: The tool failed terminally (pydantic-ai 2.x).
    """
    # Typed as ours, but a step recorded by pydantic-ai 2.x's own durability holds its outcome class (see below).
    recorded = cast(object, outcome)
    if isinstance(recorded, ToolReturned):
        return recorded.result
    if isinstance(recorded, ToolRetryRequested):
        raise ModelRetry(recorded.message)
    if isinstance(recorded, ToolApprovalRequired):
        raise ApprovalRequired(metadata=recorded.metadata)
    if isinstance(recorded, ToolFailureReported):
        if _TOOL_FAILED is None:
            raise UserError(
                f'A tool failed with `ToolFailed` ({recorded.message!r}) in a run recorded by pydantic-ai 2.x; '
                'pydantic-ai 1.107 has no `ToolFailed`: resume this run with pydantic-ai 2.x.'
            )
        raise _TOOL_FAILED(recorded.message)
    if isinstance(recorded, ToolCallDeferred):
        raise CallDeferred(metadata=recorded.metadata)
    return _unwrap_recorded_by_pydantic_ai(recorded)


def unwrap_recorded_tool_result(recorded: object) -> Any:
    """A tool call's recorded unit output, read whatever recorded it: the tool's result, or its control flow raised.

    Where a unit records a tool's result as the result itself (as pydantic-ai 1.107's own DBOS MCP steps do), its
    output is either that result or an outcome: ours, or one of pydantic-ai 2.x's own durability (recognised by its
    `kind`). An outcome is unwrapped as by [`unwrap_tool_outcome`][durable_kernel.unwrap_tool_outcome]; anything else
    is the result.

    Args:
        recorded: The unit's recorded output.

    Returns:
        The tool's result.
    """
    if isinstance(recorded, _OUR_OUTCOMES) or _recorded_kind(recorded) in _RECORDED_KINDS:
        return unwrap_tool_outcome(cast(ToolOutcome, recorded))
    return recorded


_OUR_OUTCOMES = (ToolReturned, ToolRetryRequested, ToolApprovalRequired, ToolCallDeferred, ToolFailureReported)

_RECORDED_KINDS = frozenset(
    {
        'tool_return',
        'tool_content_result',
        'tool_return_with_raw_content',
        'model_retry',
        'approval_required',
        'call_deferred',
        'tool_failed',
        'validation_error',
        'run_cancelled',
    }
)
"""The `kind`s of the tool outcomes pydantic-ai 2.x's own durability records."""


def _recorded_kind(recorded: object) -> str | None:
    kind = getattr(recorded, 'kind', None) if is_dataclass(recorded) and not isinstance(recorded, type) else None
    return kind if isinstance(kind, str) else None


def _unwrap_recorded_by_pydantic_ai(outcome: object) -> Any:
    """A tool outcome pydantic-ai 2.x's own durability recorded, read by ours.

    DBOS pickles step outputs, so a step recorded by pydantic-ai 2.x's `DBOSDurability` (a dynamic toolset's or an MCP
    server's tool call) comes back as 2.x's own outcome object, not as ours. Its classes are private, so it is read by
    the `kind` and field names its dataclasses share with ours (the shapes the Temporal payloads of both carry), and
    the same exception is raised, or the same result returned, as 2.x's own agent would.
    """
    kind = _recorded_kind(outcome)
    recorded = cast(Any, outcome)
    if kind in ('tool_return', 'tool_content_result'):
        return recorded.result
    if kind == 'tool_return_with_raw_content':
        fields = recorded.result
        content = [
            getattr(item, 'value', item) if getattr(item, 'kind', None) == 'raw_content_item' else item
            for item in fields.content
        ]
        return ToolReturn(
            fields.return_value,
            content=content,
            metadata=fields.metadata,
            **({'tools': fields.tools} if fields.tools is not None else {}),
        )
    if kind == 'model_retry':
        raise ModelRetry(recorded.message)
    if kind == 'approval_required':
        raise ApprovalRequired(metadata=recorded.metadata)
    if kind == 'call_deferred':
        call_kind = getattr(recorded, 'call_kind', 'external')
        if call_kind == 'external':
            raise CallDeferred(metadata=recorded.metadata)
        raise cast(Any, CallDeferred)(metadata=recorded.metadata, kind=call_kind)
    if kind == 'tool_failed' and _TOOL_FAILED is not None:
        raise _TOOL_FAILED(recorded.message)
    if kind == 'validation_error':
        raise pydantic.ValidationError.from_exception_data(
            recorded.title,
            [
                {
                    'type': pydantic_core.PydanticCustomError(detail.type, '{message}', {'message': detail.msg}),
                    'loc': tuple(detail.loc),
                    'input': detail.input,
                }
                for detail in recorded.errors
            ],
        )
    if kind == 'run_cancelled':
        cancelled = getattr(pai_exceptions, 'RunTimedOut' if recorded.timed_out else 'RunCancelled', None)
        if cancelled is not None:
            raise cancelled(recorded.message)
    raise UserError(
        f'A recorded tool call result of an unknown shape ({type(outcome).__qualname__}, kind {kind!r}) cannot be '
        'resumed by this release of durable: resume the run with the release (or the pydantic-ai version) that '
        'recorded it.'
    )
