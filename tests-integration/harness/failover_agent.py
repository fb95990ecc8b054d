"""The agent of the fail-over suite: several runs at once, each calling a model 3 times and tools 3 times.

Every model request and tool call appends `start` and `done` lines to a shared call log (path in
`DURABLE_FAILOVER_LOG`), each naming the run, the unit and the worker (the process group of the worker process, so
that a flow run Prefect starts in a child process of its serving process counts for that serving process).

The last tool call of every run (`call-c`) is *held* after its `start` line until the release file (path in
`DURABLE_FAILOVER_RELEASE`) exists: the test waits until every run holds one, so that at the kill each run has
recorded units (its first two model requests and two tools) and one in flight, whichever worker it is on. A held call
gives up after `HOLD_LIMIT_SECONDS`, so a lost test cannot leave it waiting forever.

A unit is *recorded* once a unit of a later phase of the same run has started (the agent loop only moves on once the
engine has recorded the previous phase); a recorded unit must never start again.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Generator, Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
from pydantic import BaseModel
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, ToolReturnPart
from pydantic_ai.models.function import AgentInfo

from ._scripted import calls, prompt_text, scripted_model, text, turn

__all__ = (
    'HELD_LABEL',
    'LOG_ENV',
    'RELEASE_ENV',
    'UNITS_PER_RUN',
    'FailoverCall',
    'FailoverDeps',
    'expected_output',
    'failover_agent',
    'prompt_for',
    'read_calls',
    'recorded_units',
    'repeated_units',
)

LOG_ENV = 'DURABLE_FAILOVER_LOG'
RELEASE_ENV = 'DURABLE_FAILOVER_RELEASE'
HELD_LABEL = 'call-c'
HOLD_LIMIT_SECONDS = 120.0

PHASES: dict[str, int] = {'model-1': 0, 'call-a': 1, 'call-b': 1, 'model-2': 2, 'call-c': 3, 'model-3': 4}
UNITS_PER_RUN = len(PHASES)
"""Model requests and tool calls of one run (3 + 3)."""


class FailoverDeps(BaseModel):
    """The deps of a run: the run's name (for the call log) and the factor its tools multiply by."""

    run: str
    factor: int = 7


def prompt_for(run: str) -> str:
    """The prompt of run `run` (the scripted model reads the run's name from it)."""
    return f'Crunch the numbers of {run}'


def expected_output(run: str) -> str:
    """The output of an uninterrupted run named `run`."""
    return f'{run} done after 3 requests, tool results call-a=14+call-b=21+call-c=35'


@contextmanager
def _logged(run: str, label: str) -> Generator[None]:
    _append(run, 'start', label)
    yield
    _append(run, 'done', label)


def _append(run: str, kind: str, label: str) -> None:
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    line = json.dumps({'worker': os.getpgid(0), 'pid': os.getpid(), 'run': run, 'kind': kind, 'label': label})
    with open(path, 'a', encoding='utf-8') as file:
        # Runs append from several processes, tasks and threads: one locked, flushed line each.
        fcntl.flock(file, fcntl.LOCK_EX)
        file.write(line + '\n')
        file.flush()
        fcntl.flock(file, fcntl.LOCK_UN)


async def _hold() -> None:
    release = os.environ.get(RELEASE_ENV)
    deadline = time.monotonic() + HOLD_LIMIT_SECONDS
    while release and not Path(release).exists() and time.monotonic() < deadline:
        await anyio.sleep(0.05)


def _run_of(messages: list[ModelMessage]) -> str:
    return prompt_text(messages).rsplit(' ', 1)[-1]


def _model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    step = turn(messages) + 1
    run = _run_of(messages)
    with _logged(run, f'model-{step}'):
        if step == 1:
            return calls(
                ('crunch', {'label': 'call-a', 'n': 2}, 'call-a'), ('crunch', {'label': 'call-b', 'n': 3}, 'call-b')
            )
        if step == 2:
            return calls(('crunch', {'label': 'call-c', 'n': 5}, 'call-c'))
        results = '+'.join(
            f'{part.tool_call_id}={part.content}'
            for message in messages
            if isinstance(message, ModelRequest)
            for part in message.parts
            if isinstance(part, ToolReturnPart)
        )
        return text(f'{run} done after {step} requests, tool results {results}')


failover_agent = Agent(scripted_model('failover', _model), name='failover_agent', deps_type=FailoverDeps)


@failover_agent.tool
async def crunch(ctx: RunContext[FailoverDeps], label: str, n: int) -> int:
    """Multiply `n` by the deps' factor (`call-c` waits for the release file first)."""
    with _logged(ctx.deps.run, label):
        if label == HELD_LABEL:
            await _hold()
        return n * ctx.deps.factor


@dataclass(frozen=True)
class FailoverCall:
    """One line of the call log."""

    worker: int
    run: str
    kind: str
    label: str


def read_calls(path: Path) -> list[FailoverCall]:
    """The call log's lines, in order."""
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text(encoding='utf-8').splitlines() if line.strip()]
    return [FailoverCall(line['worker'], line['run'], line['kind'], line['label']) for line in lines]


def recorded_units(calls_before_kill: Iterable[FailoverCall], run: str) -> set[str]:
    """The units of `run` recorded before the kill: done, and a unit of a later phase had started."""
    mine = [call for call in calls_before_kill if call.run == run]
    latest = max((PHASES[call.label] for call in mine if call.kind == 'start'), default=-1)
    return {call.label for call in mine if call.kind == 'done' and PHASES[call.label] < latest}


def repeated_units(calls_after_kill: Iterable[FailoverCall], run: str, recorded: set[str]) -> list[str]:
    """Recorded units of `run` that started again after the kill (a durability failure)."""
    return sorted(
        call.label for call in calls_after_kill if call.run == run and call.kind == 'start' and call.label in recorded
    )
