"""The agent the crash suite kills: three model requests, two parallel tools, then one more tool.

Every model request and tool call appends `start` and `done` lines to a side-channel file (path in
`DURABLE_CRASH_LOG`); when the file reaches `DURABLE_CRASH_KILL_AT` lines, the process kills itself with SIGKILL
right there (inside a model request or tool, or just after one finished). Each line carries the run's tag (several
runs share a worker process in the random-kill suite) and the wall-clock time, compared there with the completion
times the engine recorded.

Calls belong to phases (model 1, tools 1, model 2, tools 2, model 3): the agent loop only starts a phase after the
engine has recorded every result of the previous one, so a call whose phase was followed by a started call before the
kill is *committed* and must never run again.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import time
from collections.abc import Generator
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
    'CRASH_PROMPT',
    'EXPECTED_OUTPUT',
    'KILL_AT_ENV',
    'LOG_ENV',
    'SERVER_ERROR_RERUN_LINE',
    'CrashDeps',
    'Call',
    'committed_calls',
    'crash_agent',
    'crash_prompt',
    'read_calls',
    'side_channel',
    'side_channel_line',
)

LOG_ENV = 'DURABLE_CRASH_LOG'
KILL_AT_ENV = 'DURABLE_CRASH_KILL_AT'
CRASH_PROMPT = 'Crunch the numbers'
SERVER_ERROR_RERUN_LINE = 'flow run failed by a server error, run again:'
"""Starts the worker-log line of a Prefect flow run that the server failed (a 5xx, no kill) and the worker re-ran."""

# Phase of each call label: the model requests and the tool calls they make.
PHASES: dict[str, int] = {'model-1': 0, 'call-a': 1, 'call-b': 1, 'model-2': 2, 'call-c': 3, 'model-3': 4}
TOOL_DELAYS: dict[str, float] = {'call-a': 0.02, 'call-b': 0.25, 'call-c': 0.05}


class CrashDeps(BaseModel):
    """The crash run's deps: a pydantic model, pickled by DBOS and serialized by Temporal and Prefect."""

    factor: int = 7


RUN_TAG_PREFIX = ' #run:'
TOOL_RUN_SEPARATOR = '@'


def crash_prompt(run: str = '') -> str:
    """The prompt of run `run`, which tags its side-channel lines.

    The model function sees no deps, so the tag travels in the prompt; the model passes it on to the tools in their
    `label` argument (`call-a@<run>`). An untagged run is unchanged: the upgrade fixtures recorded its cache keys.
    """
    return f'{CRASH_PROMPT}{RUN_TAG_PREFIX}{run}' if run else CRASH_PROMPT


def _run_of(messages: list[ModelMessage]) -> str:
    _, _, run = prompt_text(messages).partition(RUN_TAG_PREFIX)
    return run


@contextmanager
def side_channel(label: str, run: str = '') -> Generator[None]:
    """Record `start <label>` before the body and `done <label>` after it (each may be the kill point)."""
    _append('start', label, run)
    yield
    _append('done', label, run)


def side_channel_line(kind: str, label: str, run: str = '') -> None:
    """Record one `<kind> <label>` line (it may be the kill point), e.g. `mid model-1` inside a model stream."""
    _append(kind, label, run)


def _append(kind: str, label: str, run: str) -> None:
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    kill_at = int(os.environ.get(KILL_AT_ENV, '0'))
    line = json.dumps({'pid': os.getpid(), 'kind': kind, 'label': label, 'run': run, 't': time.time()})
    with open(path, 'a+', encoding='utf-8') as file:
        # Parallel tools append from several tasks or threads: lock so the line count is exact.
        fcntl.flock(file, fcntl.LOCK_EX)
        file.write(line + '\n')
        file.flush()
        os.fsync(file.fileno())
        file.seek(0)
        count = sum(1 for _ in file)
        fcntl.flock(file, fcntl.LOCK_UN)
    if kill_at and count == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)


def _model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    step = turn(messages) + 1
    run = _run_of(messages)

    def label(name: str) -> str:
        return f'{name}{TOOL_RUN_SEPARATOR}{run}' if run else name

    with side_channel(f'model-{step}', run):
        if step == 1:
            return calls(
                ('crunch', {'label': label('call-a'), 'n': 2}, 'call-a'),
                ('crunch', {'label': label('call-b'), 'n': 3}, 'call-b'),
            )
        if step == 2:
            return calls(('crunch', {'label': label('call-c'), 'n': 5}, 'call-c'))
        return text(f'done after {step} requests, tool results {"+".join(_tool_results(messages))}')


def _tool_results(messages: list[ModelMessage]) -> list[str]:
    return [
        f'{part.tool_call_id}={part.content}'
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]


crash_agent = Agent(scripted_model('crash', _model), name='crash_agent', deps_type=CrashDeps)


@crash_agent.tool
async def crunch(ctx: RunContext[CrashDeps], label: str, n: int) -> int:
    """Multiply `n` by the deps' factor after a short delay (call-a finishes well before call-b)."""
    label, _, run = label.partition(TOOL_RUN_SEPARATOR)
    with side_channel(label, run):
        await anyio.sleep(TOOL_DELAYS[label])
        return n * ctx.deps.factor


EXPECTED_OUTPUT = 'done after 3 requests, tool results call-a=14+call-b=21+call-c=35'


@dataclass(frozen=True)
class Call:
    """One line of the side channel."""

    pid: int
    kind: str
    label: str
    run: str = ''
    t: float = 0.0
    """Wall-clock time (`time.time()`) the line was written."""


def read_calls(path: Path) -> list[Call]:
    """The side channel's lines, in order."""
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text(encoding='utf-8').splitlines() if line.strip()]
    return [Call(line['pid'], line['kind'], line['label'], line.get('run', ''), line.get('t', 0.0)) for line in lines]


def committed_calls(first_process_calls: list[Call]) -> set[str]:
    """Labels of the calls the engine had recorded before the kill: a call of a later phase had started."""
    started_phases = [PHASES[call.label] for call in first_process_calls if call.kind == 'start']
    latest = max(started_phases, default=-1)
    return {call.label for call in first_process_calls if call.kind == 'done' and PHASES[call.label] < latest}
