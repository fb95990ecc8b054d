"""The Prefect side of the demo: a local Prefect server (a child process), workers as processes, cached tasks."""

from __future__ import annotations

import json
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from examples.demo._report import RecordedCall, console
from examples.demo._runner import DemoError
from examples.prefect_server import local_prefect_server, prefect_env

SETTLE_INTERVAL = 1.0
"""Seconds between two reads of the Prefect server's task runs that must agree."""
SETTLE_TIMEOUT = 10.0
"""Seconds to wait at most for the server's view of the task runs to settle."""


def _post(url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={'Content-Type': 'application/json'}, method='POST'
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return cast(list[dict[str, Any]], json.loads(response.read()))


def _task_name(run_name: str) -> str:
    """`Call Tool: book_flight-3a1` -> `Call Tool: book_flight` (Prefect appends a random suffix to task run names)."""
    return run_name.rsplit('-', 1)[0]


def _state_name(run: dict[str, Any]) -> str | None:
    state = cast(dict[str, Any] | None, run.get('state'))
    return None if state is None else str(state.get('name'))


@dataclass
class PrefectDriver:
    """Runs the demo flow on a local Prefect server that this process starts (and stops)."""

    workdir: Path
    workflow_id: str
    model: str | None
    keep_server: bool = False
    model_name: str = 'scripted-travel-model'
    api_url: str = ''
    _stack: ExitStack = field(default_factory=ExitStack, repr=False)

    @property
    def title(self) -> str:
        """The header line."""
        return 'Prefect (local server) + worker processes'

    @property
    def record_name(self) -> str:
        """Where Prefect records completed tasks."""
        return "The Prefect server's task runs (results persisted and cached)"

    @property
    def id_file(self) -> Path:
        """Where the first worker writes the flow run id."""
        return self.workdir / 'flow_run_id'

    @property
    def replayed_label(self) -> str:
        """How a recorded call comes back after the restart."""
        return 'served from the task cache, not re-run'

    def setup(self) -> None:
        """Start a local Prefect server (database migrations take a few seconds on first start)."""
        console.print('Starting a local Prefect server (about 10 s)...')
        try:
            self.api_url = self._stack.enter_context(
                local_prefect_server(self.workdir, ui=True, keep_running=self.keep_server)
            )
        except RuntimeError as error:
            raise DemoError(str(error)) from None
        console.print(f'Prefect server ready at {self.api_url}.')

    def worker_argv(self, *, start: bool) -> list[str]:
        """`python -m examples.demo._prefect_worker ...`."""
        argv = ['-m', 'examples.demo._prefect_worker', '--flow-run-id-file', str(self.id_file)]
        return [*argv, '--start'] if start else argv

    def worker_env(self) -> dict[str, str]:
        """The server, the shared result storage, and the model."""
        return {**prefect_env(self.workdir, self.api_url), 'DURABLE_DEMO_MODEL': self.model or ''}

    def recorded_calls(self) -> list[RecordedCall]:
        """The completed (not cached) model and tool task runs of the flow run and its subflows, in order.

        The Prefect server records task states from events that the worker sends in the background and the server
        processes in the background, so its view can trail the worker by a moment (the results themselves are
        persisted before each task returns): read it until two reads a moment apart agree.
        """
        calls = self._read_recorded_calls()
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while time.monotonic() < deadline:
            time.sleep(SETTLE_INTERVAL)
            again = self._read_recorded_calls()
            if again == calls:
                break
            calls = again
        return calls

    def _read_recorded_calls(self) -> list[RecordedCall]:
        flow_run_id = self.id_file.read_text().strip()
        subflows = _post(
            f'{self.api_url}/flow_runs/filter', {'flow_runs': {'parent_flow_run_id': {'any_': [flow_run_id]}}}
        )
        ids = [flow_run_id, *(str(run['id']) for run in subflows)]
        runs = _post(f'{self.api_url}/task_runs/filter', {'task_runs': {'flow_run_id': {'any_': ids}}})
        completed = [r for r in runs if _state_name(r) == 'Completed']
        completed.sort(key=lambda r: str(r.get('start_time') or r.get('expected_start_time') or ''))
        calls: list[RecordedCall] = []
        for run in completed:
            name = _task_name(str(run['name']))
            if name.startswith('Model Request'):
                calls.append(RecordedCall('model', self.model_name, name, 'result persisted'))
            elif name.startswith('Call Tool: '):
                calls.append(RecordedCall('tool', name.removeprefix('Call Tool: '), name, 'result persisted'))
            else:
                calls.append(RecordedCall('other', name, name, ''))
        return calls

    def link(self) -> str | None:
        """The flow run in the Prefect web UI, once the first worker has started it."""
        if not self.api_url or not self.id_file.exists():
            return None
        return f'{self.api_url.removesuffix("/api")}/runs/flow-run/{self.id_file.read_text().strip()}'

    def teardown(self) -> None:
        """Stop the server, unless `--keep-server`."""
        self._stack.close()
        pid_file = self.workdir / 'prefect-server.pid'
        if self.keep_server and pid_file.exists():
            pid = pid_file.read_text().strip()
            console.print(
                f'The Prefect server keeps running (pid {pid}, UI {self.api_url.removesuffix("/api")}, '
                f'database in {self.workdir}); stop it with: kill {pid}'
            )
