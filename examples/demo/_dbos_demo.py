"""The DBOS side of the demo: an embedded SQLite database (or Postgres with `--database-url`), no server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from examples.demo._engine import summarize_output
from examples.demo._report import RecordedCall
from examples.demo._travel import AGENT_NAME


def recorded_call(function_name: str, output: object) -> RecordedCall:
    """Map a DBOS step (`travel_agent__model.request`, `...call_tool.book_flight`) to a demo call."""
    if function_name.startswith(f'{AGENT_NAME}__model.'):
        return RecordedCall('model', 'scripted-travel-model', function_name, summarize_output(output))
    if '.call_tool' in function_name:
        tool = function_name.rsplit('.', 1)[-1]
        return RecordedCall('tool', tool, function_name, summarize_output(output))
    return RecordedCall('other', function_name, function_name, '')


@dataclass
class DBOSDriver:
    """Runs the demo workflow on DBOS: the workers launch DBOS on one database; this process only reads it."""

    workdir: Path
    workflow_id: str
    model: str | None
    database_url: str | None = None
    model_name: str = 'scripted-travel-model'
    tools_not_durable: bool = False

    @property
    def title(self) -> str:
        """The header line."""
        return 'DBOS + PostgreSQL' if self.database_url else 'DBOS + SQLite (embedded, no server)'

    @property
    def record_name(self) -> str:
        """Where DBOS records completed steps."""
        return 'The DBOS system database'

    @property
    def url(self) -> str:
        """The system database URL the workers use."""
        return self.database_url or f'sqlite:///{self.workdir / "dbos_demo.sqlite"}'

    @property
    def replayed_label(self) -> str:
        """How a recorded call comes back after the restart."""
        return 'read from the database, not re-run'

    def setup(self) -> None:
        """Nothing to start: the first worker creates the SQLite database."""

    def worker_argv(self, *, start: bool) -> list[str]:
        """`python -m examples.demo._dbos_worker ...`."""
        argv = ['-m', 'examples.demo._dbos_worker', '--database-url', self.url, '--workflow-id', self.workflow_id]
        if self.model:
            argv += ['--model', self.model]
        if self.tools_not_durable:
            argv.append('--tools-not-durable')
        return [*argv, '--start'] if start else argv

    def worker_env(self) -> dict[str, str]:
        """Nothing more: the model is on the command line."""
        return {}

    def recorded_calls(self) -> list[RecordedCall]:
        """The workflow's steps, read with a `DBOSClient` (it talks to the database only, runs no workflow)."""
        from dbos import DBOSClient

        client = DBOSClient(system_database_url=self.url)
        try:
            steps = client.list_workflow_steps(self.workflow_id)
        finally:
            client.destroy()
        calls = [recorded_call(s['function_name'], s['output']) for s in steps if s['error'] is None]
        return [c if c.kind != 'model' else RecordedCall('model', self.model_name, c.unit, c.summary) for c in calls]

    def link(self) -> str | None:
        """DBOS has no local UI; the steps are in the database."""
        return None

    def teardown(self) -> None:
        """Nothing to stop."""
