"""What a run returns, on any engine, and how two runs are compared."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pydantic import TypeAdapter
from pydantic_ai.messages import AgentStreamEvent, ModelMessage, ModelMessagesTypeAdapter
from pydantic_ai.run import AgentRunResult
from pydantic_ai.usage import RunUsage
from pydantic_core import to_jsonable_python

__all__ = (
    'DurableRunFailed',
    'RunOutcome',
    'describe_error',
    'comparable_events',
    'comparable_messages',
    'outcome_from_result',
)

# Fields that legitimately differ between two executions of the same script. pydantic-ai 2.78 stamps model responses
# with when the request was sent and how long it took (`request_timestamp`, `duration`): wall-clock, like `timestamp`.
_VOLATILE_KEYS = frozenset({'timestamp', 'run_id', 'conversation_id', 'request_timestamp', 'duration'})

_events_adapter: TypeAdapter[list[AgentStreamEvent]] = TypeAdapter(list[AgentStreamEvent])


class DurableRunFailed(Exception):
    """A run failed on an engine that reports errors as data (a Temporal workflow failure): its type and message."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f'{error_type}: {message}')
        self.error_type = error_type
        self.message = message


def describe_error(error: BaseException) -> tuple[str, str]:
    """`(type name, message)` of a run's error, whether raised in-process or reported by the engine."""
    if isinstance(error, DurableRunFailed):
        return error.error_type, error.message
    return type(error).__name__, str(error)


@dataclass
class RunOutcome:
    """The engine-independent view of an `AgentRunResult`."""

    output: Any
    """The output as JSON-compatible data."""
    output_type: str
    """The class name of the output (`str`, `City`, `DeferredToolRequests`...)."""
    messages: list[ModelMessage]
    usage: RunUsage

    def comparable(self) -> dict[str, Any]:
        """Everything that must be equal between a durable run and the plain run of the same script."""
        return {
            'output': self.output,
            'output_type': self.output_type,
            'messages': comparable_messages(self.messages),
            'usage': asdict(self.usage),
        }


def outcome_from_result(result: AgentRunResult[Any]) -> RunOutcome:
    """Build the outcome of a run from its result."""
    return RunOutcome(
        output=to_jsonable_python(result.output),
        output_type=type(result.output).__name__,
        messages=result.all_messages(),
        usage=result.usage,
    )


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        items: dict[str, Any] = value  # pyright: ignore[reportUnknownVariableType]
        return {key: '<volatile>' if key in _VOLATILE_KEYS else _scrub(item) for key, item in items.items()}
    if isinstance(value, list):
        return [_scrub(item) for item in value]  # pyright: ignore[reportUnknownVariableType]
    return value


def comparable_messages(messages: list[ModelMessage]) -> Any:
    """The messages as JSON data, without timestamps and run ids."""
    return _scrub(ModelMessagesTypeAdapter.dump_python(messages, mode='json'))


def comparable_events(events: list[AgentStreamEvent]) -> Any:
    """The events as JSON data, without timestamps and run ids."""
    return _scrub(_events_adapter.dump_python(events, mode='json'))
