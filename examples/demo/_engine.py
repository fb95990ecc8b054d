"""What the demo needs from an engine: how to start its worker process and how to read what it recorded."""

from __future__ import annotations

from typing import Any, Protocol

from pydantic_ai.messages import ModelResponse, ToolCallPart

from examples.demo._journal import describe
from examples.demo._report import RecordedCall


class EngineDriver(Protocol):
    """One engine's side of the demo (the parent process's view)."""

    @property
    def title(self) -> str:
        """Shown in the header, for example 'DBOS + SQLite'."""
        ...

    @property
    def record_name(self) -> str:
        """Where the engine records completed calls, for example 'The DBOS system database'."""
        ...

    @property
    def replayed_label(self) -> str:
        """How a recorded call comes back after the restart, for example 'replayed from history'."""
        ...

    def setup(self) -> None:
        """Start what the engine needs (a server, ...); called once before the first worker."""
        ...

    def worker_argv(self, *, start: bool) -> list[str]:
        """The worker command line (after `python`): `start=True` starts the run, `False` only recovers it."""
        ...

    def worker_env(self) -> dict[str, str]:
        """More environment variables for the worker processes."""
        ...

    def recorded_calls(self) -> list[RecordedCall]:
        """The completed model and tool calls of the demo run, in order, as the engine recorded them."""
        ...

    def link(self) -> str | None:
        """Where to look at the run in the engine's UI, if it has one."""
        ...

    def teardown(self) -> None:
        """Stop whatever `setup` started."""
        ...


def summarize_output(output: Any) -> str:
    """A one-line summary of a recorded call's output (a model response or a tool's return value)."""
    if isinstance(output, ModelResponse):
        calls = [p for p in output.parts if isinstance(p, ToolCallPart)]
        if calls:
            return 'asks for ' + ', '.join(c.tool_name for c in calls)
        return 'answers: ' + describe(output.text or '')
    # A tool outcome recorded as data (`ToolReturned`) carries the return value.
    for attribute in ('value', 'result'):
        output = getattr(output, attribute, output)
    return describe(output)
