"""Read the activity schedule out of a recorded history: `python schedule.py reference/tools.json`.

Replay checks the order and type of the commands a workflow issues, so the schedule (activity type and summary,
in order) is what two implementations must agree on; comparing schedules gives a readable diff when they do not.
"""

from __future__ import annotations

import base64
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast


@dataclass(frozen=True)
class ScheduledActivity:
    """One `ActivityTaskScheduled` event."""

    activity_type: str
    summary: str | None
    argument_keys: tuple[str, ...]
    """The field names of the first argument (the params object), when it is a JSON object."""
    argument_count: int
    start_to_close_timeout: str | None
    non_retryable_error_types: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f'{self.activity_type} [{self.summary}] ({", ".join(self.argument_keys)}) +{self.argument_count - 1} '
            f'timeout={self.start_to_close_timeout} non_retryable={",".join(self.non_retryable_error_types)}'
        )


def _decode(payload: dict[str, Any]) -> Any:
    data = payload.get('data')
    return None if data is None else json.loads(base64.b64decode(data))


def activity_schedule(history_json: str) -> list[ScheduledActivity]:
    """The activities a history scheduled, in order."""
    events = cast('list[dict[str, Any]]', json.loads(history_json)['events'])
    schedule: list[ScheduledActivity] = []
    for event in events:
        attributes = event.get('activityTaskScheduledEventAttributes')
        if attributes is None:
            continue
        summary_payload = event.get('userMetadata', {}).get('summary')
        payloads = cast('list[dict[str, Any]]', attributes.get('input', {}).get('payloads', []))
        first = _decode(payloads[0]) if payloads else None
        keys = tuple(cast('dict[str, Any]', first)) if isinstance(first, dict) else ()
        schedule.append(
            ScheduledActivity(
                activity_type=attributes['activityType']['name'],
                summary=_decode(summary_payload) if summary_payload else None,
                argument_keys=keys,
                argument_count=len(payloads),
                start_to_close_timeout=attributes.get('startToCloseTimeout'),
                non_retryable_error_types=tuple(attributes.get('retryPolicy', {}).get('nonRetryableErrorTypes', ())),
            )
        )
    return schedule


if __name__ == '__main__':
    for path in sys.argv[1:]:
        print(f'== {path}')
        for activity in activity_schedule(Path(path).read_text()):
            print(f'  {activity}')
