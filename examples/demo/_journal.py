"""A side channel: every model or tool call that actually executes appends a line to a JSON-lines file.

Calls replayed from the engine's history never execute, so they never write here: comparing this journal with the
engine's record of completed steps/activities tells which calls ran fresh and which were replayed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict

JOURNAL_ENV = 'DURABLE_DEMO_JOURNAL'
"""Environment variable holding the journal path; unset means calls are not journaled (examples, tests)."""

HOLD_AFTER_ENV = 'DURABLE_DEMO_HOLD_AFTER'
"""In the process to be killed: once this many calls have completed, the next call holds (a slow call) until killed.

Without it, a loaded machine could let the process race past the crash point (or finish) before the SIGKILL lands.
"""

HOLD_SECONDS = 120.0
"""How long a held call waits for its kill before going on (if the demo itself died meanwhile)."""

CallKind = Literal['model', 'tool']

_completed_calls = 0


class JournalEvent(TypedDict):
    """One line of the journal."""

    event: Literal['start', 'end', 'final', 'error']
    kind: str
    name: str
    call: str
    """What was called (the arguments or the turn): with kind and name, it identifies the call across processes."""
    text: str
    pid: int
    t: float


def _append(event: JournalEvent) -> None:
    path = os.environ.get(JOURNAL_ENV)
    if not path:
        return
    # One write call per line in append mode: lines from concurrent calls never interleave.
    with open(path, 'a', encoding='utf-8') as f:
        f.write(json.dumps(event) + '\n')


def record(event: Literal['start', 'end', 'final', 'error'], kind: str, name: str, text: str, call: str = '') -> None:
    """Append one event to the journal named by `DURABLE_DEMO_JOURNAL` (no-op when unset)."""
    _append(
        {'event': event, 'kind': kind, 'name': name, 'call': call, 'text': text, 'pid': os.getpid(), 't': time.time()}
    )


@dataclass
class CallRecord:
    """Set `text` inside a `journaled_call` block to describe the call's result."""

    text: str = ''


@contextmanager
def journaled_call(kind: CallKind, name: str, text: str) -> Generator[CallRecord]:
    """Journal the start of a call, and its end once the block completes."""
    global _completed_calls
    record('start', kind, name, text, call=text)
    hold_after = os.environ.get(HOLD_AFTER_ENV)
    if hold_after and _completed_calls >= int(hold_after):
        # Block the whole process (event loop included) inside this call: the demo SIGKILLs it here.
        deadline = time.monotonic() + HOLD_SECONDS
        while time.monotonic() < deadline:
            time.sleep(0.05)
    result = CallRecord()
    yield result
    _completed_calls += 1
    record('end', kind, name, result.text, call=text)


@dataclass
class JournalReader:
    """Reads the lines appended to a journal since the last call (tail -f)."""

    path: Path
    _offset: int = 0
    events: list[JournalEvent] = field(default_factory=lambda: [])

    def poll(self) -> list[JournalEvent]:
        """Return the complete lines appended since the previous poll."""
        if not self.path.exists():
            return []
        with open(self.path, encoding='utf-8') as f:
            f.seek(self._offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind('\n') + 1]
        self._offset += len(complete.encode('utf-8'))
        new: list[JournalEvent] = [json.loads(line) for line in complete.splitlines() if line.strip()]
        self.events.extend(new)
        return new


def describe(value: Any) -> str:
    """A short one-line rendering of a value for the console."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 90 else text[:87] + '...'
