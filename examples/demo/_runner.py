"""Process handling for the demo: start a worker process, follow its journal, SIGKILL it, start another."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from examples.demo._journal import JOURNAL_ENV, JournalEvent, JournalReader
from examples.demo._report import console, show_event
from examples.demo._travel import LATENCY_ENV


class DemoError(Exception):
    """Something went wrong; the message says what, and what to do."""


@dataclass
class Worker:
    """A worker process the demo started (and therefore stops)."""

    process: subprocess.Popen[bytes]
    log: Path
    label: str

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL the process (no cleanup, no goodbye: like a power cut), and reap it."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def log_tail(self, lines: int = 25) -> str:
        """The end of the process's output, to explain a failure."""
        text = self.log.read_text(errors='replace') if self.log.exists() else ''
        return '\n'.join(text.splitlines()[-lines:])


@dataclass
class WorkerLauncher:
    """Starts worker processes that journal their calls to one file."""

    workdir: Path
    journal: Path
    latency: float
    started: list[Worker]

    def start(self, label: str, argv: Sequence[str], extra_env: dict[str, str] | None = None) -> Worker:
        """Start `python <argv>` in the repository root, with the journal and latency in its environment."""
        env = {**os.environ, JOURNAL_ENV: str(self.journal), LATENCY_ENV: str(self.latency), **(extra_env or {})}
        log = self.workdir / f'{label.replace(" ", "_")}.log'
        with open(log, 'wb') as out:
            process = subprocess.Popen(
                [sys.executable, *argv],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=Path(__file__).resolve().parents[2],
                # Its own session: a Ctrl-C in the terminal reaches the demo, which then stops its workers itself.
                start_new_session=True,
            )
        worker = Worker(process, log, label)
        self.started.append(worker)
        return worker

    def stop_all(self) -> None:
        """Kill every worker still running."""
        for worker in self.started:
            worker.kill()


def follow(
    worker: Worker,
    reader: JournalReader,
    *,
    until: Callable[[JournalEvent], bool],
    timeout: float,
) -> JournalEvent | None:
    """Print the worker's journal events live until `until(event)` holds (returns it) or the worker exits (None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        exited = worker.process.poll() is not None
        for event in reader.poll():
            show_event(event, worker.label)
            if until(event):
                return event
        if exited:
            return None
        time.sleep(0.02)
    raise DemoError(
        f'{worker.label} (pid {worker.pid}) did not get there within {timeout:.0f} s. Its output:\n{worker.log_tail()}'
    )


def wait_exit(worker: Worker, timeout: float) -> int:
    """Wait for a worker to exit; raise if it fails or hangs."""
    try:
        code = worker.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DemoError(f'{worker.label} (pid {worker.pid}) did not exit within {timeout:.0f} s.') from None
    if code != 0:
        console.print(f'[red]{worker.label} exited with code {code}. Its output:[/]\n{worker.log_tail()}')
    return code
