"""Host-side state for the starvation tests: imported passed-through, so it outlives the workflow sandboxes."""

from __future__ import annotations

import time

BURNED: set[str] = set()


def hold_once(key: str, seconds: float) -> None:
    """Hold the calling thread in Python code for `seconds`, the first time only for `key`.

    Like a starved activation: Temporal's deadlock detector fires after 2 s and raises an interruption in the thread,
    which a starved thread may take long to act on (here: it is noted and the work carries on until `seconds`).
    """
    if key in BURNED:
        return
    BURNED.add(key)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        try:
            while time.perf_counter() < end:
                pass
        except BaseException as error:  # Temporal's interruption is a private BaseException subclass
            if type(error).__name__ != '_InterruptDeadlockError':
                raise
