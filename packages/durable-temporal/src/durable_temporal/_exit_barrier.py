"""The process does not abort at exit while a Temporal Rust thread is inside Python.

The Temporal SDK's Rust core runs its own threads (a tokio runtime), and they call into Python through pyo3: to
complete the asyncio future of every client and worker call (`loop.call_soon_threadsafe`, which writes to the
loop's wake-up socket), to build RPC errors, to print an error. Such a call holds a thread state made by
`PyGILState_Ensure` and may let go of the GIL half-way (a thread switch, a blocking write). If the main thread starts
finalizing the interpreter in that moment, CPython before 3.14 ends the Rust thread with `pthread_exit` when it asks
for the GIL back; the forced unwind runs pyo3's guard, which releases a thread state that is not current, and the
process dies with `Fatal Python error: PyGILState_Release: thread state ... must be current when releasing` (SIGABRT,
exit code 134) after the program has done its work and printed its result. A supervisor sees a crash.

`atexit` callbacks run while the interpreter is still whole, right before finalization starts. The callback
registered here (when `durable_temporal` is imported, so that it runs after the callbacks registered later: Logfire's
and OpenTelemetry's shutdowns, which block and let other threads in) waits, giving up the GIL, until no thread that
Python did not start holds a thread state: every Rust thread that was inside Python has left it. Once it returns, the
main thread keeps the GIL until finalization has begun, and a Rust thread that asks for it from then on is stopped
before it holds a thread state, which is harmless. The wait is bounded so that a thread that never leaves Python
cannot hang the exit.
"""

from __future__ import annotations

import atexit
import ctypes
import sys
import threading
import time

__all__ = ('foreign_thread_states', 'wait_for_foreign_threads')

EXIT_WAIT_SECONDS = 5.0
"""The longest the exit waits for Rust threads to leave Python."""

_api = ctypes.pythonapi
_api.PyInterpreterState_Get.restype = ctypes.c_void_p
_api.PyInterpreterState_ThreadHead.argtypes = [ctypes.c_void_p]
_api.PyInterpreterState_ThreadHead.restype = ctypes.c_void_p
_api.PyThreadState_Next.argtypes = [ctypes.c_void_p]
_api.PyThreadState_Next.restype = ctypes.c_void_p


def _thread_state_count() -> int:
    # The caller holds the GIL, so no thread state is deleted while the list is walked (a thread deletes its own
    # under the GIL); one made meanwhile by `PyGILState_Ensure` is inserted at the head, behind the walk.
    count = 0
    state: int | None = _api.PyInterpreterState_ThreadHead(_api.PyInterpreterState_Get())
    while state:
        count += 1
        state = _api.PyThreadState_Next(state)
    return count


def foreign_thread_states() -> int:
    """How many threads hold a Python thread state without having been started by Python (`threading`).

    They are threads of native libraries (Temporal's Rust runtime) that are inside a call into Python, or waiting
    for the GIL to start one. A Python thread that has just finished may be counted for a moment.
    """
    python_threads = sum(1 for thread in threading.enumerate() if not isinstance(thread, threading._DummyThread))  # pyright: ignore[reportPrivateUsage]
    return max(0, _thread_state_count() - python_threads)


def wait_for_foreign_threads(timeout: float = EXIT_WAIT_SECONDS) -> bool:
    """Give up the GIL until no foreign thread holds a thread state, or `timeout` seconds have passed.

    Returns:
        Whether they all left.
    """
    deadline = time.monotonic() + timeout
    while foreign_thread_states():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.001)
    return True


def _wait_at_exit() -> None:
    if not sys.is_finalizing():
        wait_for_foreign_threads()


atexit.register(_wait_at_exit)
