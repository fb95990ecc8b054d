"""Kill workers with SIGKILL at random moments, sometimes again during recovery, and count re-execution from the
engine's records.

Unlike `crash_run.py` (one run per worker, killed by its own side channel at a chosen event), a *round* here starts
several runs of the crash agent in one worker process and kills that process from outside after a random delay drawn
over a round's duration: before the worker is up, between units, inside the engine's own bookkeeping, or after the
runs finished. With some probability the recovering worker is killed too, after its own random delay; a last worker
then finishes every run. A run is *lost* if it has not produced the uninterrupted output within `finish_seconds`
(ten unkilled rounds' time, at least `FINISH_SECONDS`: generous on a loaded machine).

Re-execution is counted from the engine's records (`harness/engine_records.py`): a unit the engine holds as completed
at time T is *re-executed* if the side channel shows a call of it starting after T. Calls that started more than once
but never after their record were in flight at a kill (or timed out under load): at-least-once, allowed, and counted
as *repeated*.

When to kill: a quarter of the kills come a random fraction of the *startup span* after the worker was spawned
(while it imports, connects, launches or recovers: before any call of ours), the others a random fraction of the
*work span* after the worker's first side-channel line (between and inside units, and in the engine's bookkeeping
around them). Both spans are measured with an unkilled round first. The fractions come from a seeded generator
(`random.Random(seed)`), so `--seed S --span STARTUP,WORK` replays the same kill moments.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio

from .crash_agent import EXPECTED_OUTPUT, PHASES, SERVER_ERROR_RERUN_LINE, Call, read_calls
from .crash_run import WorkerProcess
from .engine_records import UnitRecord

__all__ = (
    'KillEngine',
    'KillMoment',
    'KillPlan',
    'KillRound',
    'Spans',
    'analyse',
    'kill_round',
    'kill_rounds',
    'plan_rounds',
)

RUNS_PER_WORKER = 3
SECOND_KILL_PROBABILITY = 0.3
FROM_SPAWN_PROBABILITY = 0.25
FINISH_SECONDS = 180.0
"""The least time a run has to finish after its last worker started before it counts as lost."""


@dataclass(frozen=True)
class KillMoment:
    """When to kill a worker: `fraction` of the startup span after its spawn, or of the work span after its first
    side-channel line."""

    fraction: float
    from_spawn: bool

    def describe(self, spans: Spans) -> str:
        """E.g. `0.42 of work (0.21 s after its first call)`."""
        if self.from_spawn:
            return f'{self.fraction:.2f} of startup ({self.fraction * spans.startup:.2f} s after spawn)'
        return f'{self.fraction:.2f} of work ({self.fraction * spans.work:.2f} s after its first call)'


@dataclass(frozen=True)
class Spans:
    """Seconds from a worker's spawn to its first call (`startup`), and from there until its runs finished
    (`work`), in an unkilled round."""

    startup: float
    work: float

    @property
    def finish_seconds(self) -> float:
        """How long a run may take after its last worker was spawned before it counts as lost."""
        return max(FINISH_SECONDS, 10 * (self.startup + self.work))

    def __str__(self) -> str:
        return f'{self.startup:.2f},{self.work:.2f}'


@dataclass(frozen=True)
class KillPlan:
    """The random draws of one round: the first kill, and a second one during recovery (or None)."""

    index: int
    first: KillMoment
    second: KillMoment | None


def plan_rounds(seed: int, count: int) -> list[KillPlan]:
    """`count` rounds from `random.Random(seed)`: the first kill always, a second one with some probability."""
    rng = random.Random(seed)

    def moment() -> KillMoment:
        from_spawn = rng.random() < FROM_SPAWN_PROBABILITY
        return KillMoment(rng.random(), from_spawn)

    plans: list[KillPlan] = []
    for index in range(count):
        first = moment()
        second = moment() if rng.random() < SECOND_KILL_PROBABILITY else None
        plans.append(KillPlan(index, first, second))
    return plans


@dataclass
class KillRound:
    """What happened in one round."""

    engine: str
    plan: KillPlan
    spans: Spans
    runs: list[str] = field(default_factory=list[str])
    kill_times: list[float] = field(default_factory=list[float])
    """Wall-clock times of the SIGKILLs that interrupted work (a worker still running with a run unfinished)."""
    killed_pids: list[int] = field(default_factory=list[int])
    """PIDs of the workers a SIGKILL ended, including those whose runs had all finished."""
    outputs: dict[str, str | None] = field(default_factory=dict[str, str | None])
    records: list[UnitRecord] = field(default_factory=list[UnitRecord])
    re_executed: list[str] = field(default_factory=list[str])
    """`run/label` of recorded units that started again after the engine recorded them: a durability failure."""
    repeated: list[str] = field(default_factory=list[str])
    """`run/label` of units that started more than once, never after their record (in flight at a kill)."""
    unmapped: list[str] = field(default_factory=list[str])
    """Runs whose records do not name each of the six calls exactly once (the record reading is wrong)."""
    records_lost: list[str] = field(default_factory=list[str])
    """`run/label` of units of a finished Prefect run without any record, which finished in a killed worker (see
    `analyse`)."""
    recorded_before_kill: int = 0
    """Units the engine had recorded before the first kill (work the kill could have repeated)."""
    server_reruns: int = 0
    """Flow runs a Prefect worker ran again after the server failed them with a 5xx (no kill: see `crash_worker`)."""
    error: str | None = None

    @property
    def kills(self) -> int:
        """SIGKILLs that interrupted work."""
        return len(self.kill_times)

    @property
    def lost(self) -> list[str]:
        """Runs without the uninterrupted output."""
        return [run for run in self.runs if self.outputs.get(run) != EXPECTED_OUTPUT]

    @property
    def ok(self) -> bool:
        """No run lost, no recorded unit re-executed, the records named every unit."""
        return not self.lost and not self.re_executed and not self.unmapped and self.error is None

    def describe(self) -> str:
        """One progress line."""
        delays = f'kill at {self.plan.first.describe(self.spans)}'
        if self.plan.second is not None:
            delays += f', recovery killed at {self.plan.second.describe(self.spans)}'
        text = (
            f'[{self.engine}] round {self.plan.index}: {delays}; kills landed {self.kills}; '
            f'runs {len(self.runs)}, lost {len(self.lost)}; units recorded {len(self.records)} '
            f'({self.recorded_before_kill} before the kill), re-executed {len(self.re_executed)}, '
            f'repeated in flight {len(self.repeated)}'
        )
        if self.server_reruns:
            text += f'; flow runs re-run after a server error {self.server_reruns}'
        if self.records_lost:
            text += f'; records lost with a killed worker {len(self.records_lost)}'
        for name, items in (('re-executed', self.re_executed), ('unmapped', self.unmapped), ('lost', self.lost)):
            if items:
                text += f'\n    {name}: {", ".join(items)}'
        if self.error:
            text += f'\n    error: {self.error}'
        return text


class KillEngine(Protocol):
    """Starts a round's runs on one engine, spawns its workers and reads back what the engine recorded."""

    engine: str

    async def start(self, runs: list[str], workdir: Path) -> Any:
        """Create the runs (where the engine needs them created from outside); returns the round's state."""
        ...

    def spawn(self, state: Any, workdir: Path, *, recover: bool) -> WorkerProcess:
        """A worker that runs (or, recovering, resumes) every run of the round."""
        ...

    def worker_exits(self) -> bool:
        """Whether a worker exits once its runs are done (DBOS, Prefect) or polls until stopped (Temporal)."""
        ...

    async def outputs(self, state: Any, workdir: Path, timeout: float) -> dict[str, str | None]:
        """Each run's output once finished (None if it did not finish within `timeout`)."""
        ...

    async def records(self, state: Any) -> list[UnitRecord]:
        """The completed units the engine recorded for the round's runs."""
        ...


async def _wait_exit(process: WorkerProcess, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while (code := process.poll()) is None and time.monotonic() < deadline:
        await anyio.sleep(0.02)
    return code


async def _stop(process: WorkerProcess) -> None:
    """Stop a worker by its PID: SIGTERM, then SIGKILL."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        process.send_signal(sig)
        if await _wait_exit(process, grace) is not None:
            return


def _finished_runs(log: Path, before: float) -> set[str]:
    return {call.run for call in read_calls(log) if call.kind == 'done' and call.label == 'model-3' and call.t < before}


async def _first_call(process: WorkerProcess, log: Path) -> bool:
    """Wait for the first side-channel line of `process`; False if it exits (or takes `FINISH_SECONDS`) first."""
    deadline = time.monotonic() + FINISH_SECONDS
    while process.poll() is None and time.monotonic() < deadline:
        if any(call.pid == process.pid for call in read_calls(log)):
            return True
        await anyio.sleep(0.01)
    return False


async def _kill_at(
    process: WorkerProcess, moment: KillMoment, spans: Spans, runs: list[str], log: Path, killed: list[int]
) -> float | None:
    """SIGKILL `process` at `moment`; the kill's time if it interrupted work (the process ran, a run unfinished).

    The PID of a process the SIGKILL ended goes to `killed`, whether or not the kill interrupted work.
    """
    if moment.from_spawn:
        delay = moment.fraction * spans.startup
    elif await _first_call(process, log):
        delay = moment.fraction * spans.work
    else:
        return None  # it finished (or had nothing left to call) before the kill
    if await _wait_exit(process, delay) is not None:
        return None  # it finished before the kill
    killed_at = time.time()
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGKILL)
    code = await _wait_exit(process, 30.0)
    if code != -signal.SIGKILL:
        return None
    killed.append(process.pid)
    return killed_at if _finished_runs(log, killed_at) != set(runs) else None


async def kill_round(engine: KillEngine, plan: KillPlan, spans: Spans, workdir: Path) -> KillRound:
    """Run one round: start the runs, kill the worker (and maybe its successor), finish, analyse the records."""
    result = KillRound(engine.engine, plan, spans, runs=[f'r{plan.index}x{k}' for k in range(RUNS_PER_WORKER)])
    log = workdir / 'calls.jsonl'
    workers: list[WorkerProcess] = []
    try:
        state = await engine.start(result.runs, workdir)
        first = engine.spawn(state, workdir, recover=False)
        workers.append(first)
        moment = await _kill_at(first, plan.first, spans, result.runs, log, result.killed_pids)
        if moment is not None:
            result.kill_times.append(moment)
            if plan.second is not None:
                second = engine.spawn(state, workdir, recover=True)
                workers.append(second)
                if (
                    moment := await _kill_at(second, plan.second, spans, result.runs, log, result.killed_pids)
                ) is not None:
                    result.kill_times.append(moment)
        last = engine.spawn(state, workdir, recover=True)
        workers.append(last)
        if engine.worker_exits():
            await _wait_exit(last, spans.finish_seconds)
        result.outputs = await engine.outputs(state, workdir, spans.finish_seconds)
        result.records = await engine.records(state)
        result.server_reruns = _server_reruns(workdir / 'workers.log')
    except Exception as error:  # reported in the round's line and the table, not raised
        result.error = repr(error)
    finally:
        for worker in workers:
            await _stop(worker)
    return analyse(result, read_calls(log))


def _server_reruns(worker_log: Path) -> int:
    if not worker_log.exists():
        return 0
    return worker_log.read_text(encoding='utf-8', errors='replace').count(SERVER_ERROR_RERUN_LINE)


RECORDS_SENT_IN_BACKGROUND = frozenset({'prefect'})
"""Engines whose records a killed worker can take along after the unit finished (see `analyse`)."""


def _finished_only_in_killed_worker(calls: list[Call], run: str, label: str, killed_pids: list[int]) -> bool:
    """The unit's last start was in a worker that a SIGKILL ended, and it finished there."""
    unit = [call for call in calls if call.run == run and call.label == label]
    starts = [call for call in unit if call.kind == 'start']
    if not starts:
        return False
    last = max(starts, key=lambda call: call.t)
    return last.pid in killed_pids and any(call.kind == 'done' and call.pid == last.pid for call in unit)


def analyse(result: KillRound, calls: list[Call]) -> KillRound:
    """Fill in the round's re-executed, repeated and unmapped units from its records and side-channel calls."""
    first_kill = result.kill_times[0] if result.kill_times else float('inf')
    for run in result.runs:
        records = [record for record in result.records if record.run == run]
        labels = Counter(record.label for record in records)
        # A finished run's records name each of the six calls (more than once only if a unit ran to completion twice,
        # a re-execution counted below); anything else means the records were not read right. Except on Prefect,
        # which sends task run states (the records) as events from a background thread: a worker killed after a
        # unit finished, before its events were sent, takes its record along (the flow run's own state, set through
        # the API, can still say the run finished, so no later attempt records the unit). Such a unit must have
        # finished in a killed worker and never started after that; it is counted apart.
        missing = set(PHASES) - set(labels)
        if result.engine in RECORDS_SENT_IN_BACKGROUND:
            lost = {
                label for label in missing if _finished_only_in_killed_worker(calls, run, label, result.killed_pids)
            }
            missing -= lost
        else:
            lost = set[str]()
        if result.outputs.get(run) == EXPECTED_OUTPUT:
            if missing or set(labels) - set(PHASES) or None in labels:
                result.unmapped.append(f'{run}: {dict(labels)}')
            result.records_lost += [f'{run}/{label}' for label in sorted(lost)]
        starts = Counter(call.label for call in calls if call.run == run and call.kind == 'start')
        re_executed: set[str] = set()
        for record in records:
            if record.label is None:
                continue
            later = [c for c in calls if c.run == run and c.kind == 'start' and c.label == record.label]
            if any(call.t > record.completed_at for call in later) or labels[record.label] > 1:
                re_executed.add(record.label)
            if record.completed_at < first_kill < float('inf'):
                result.recorded_before_kill += 1
        result.re_executed += [f'{run}/{label}' for label in sorted(re_executed)]
        repeated = {label for label, count in starts.items() if count > 1} - re_executed
        repeated |= {r.label for r in records if r.attempts > 1 and r.label is not None and r.label not in re_executed}
        result.repeated += [f'{run}/{label}' for label in sorted(repeated)]
    return result


async def measure_spans(engine: KillEngine, workdir: Path) -> Spans:
    """The spans of an unkilled round (the kill moments are drawn over them)."""
    workdir.mkdir(parents=True)
    state = await engine.start([f'calibrate{k}' for k in range(RUNS_PER_WORKER)], workdir)
    started = time.time()
    worker = engine.spawn(state, workdir, recover=False)
    try:
        if engine.worker_exits():
            await _wait_exit(worker, FINISH_SECONDS)
        outputs = await engine.outputs(state, workdir, FINISH_SECONDS)
    finally:
        await _stop(worker)
    if set(outputs.values()) != {EXPECTED_OUTPUT}:
        raise RuntimeError(f'the unkilled calibration round did not finish: {outputs}')
    times = [call.t for call in read_calls(workdir / 'calls.jsonl')]
    return Spans(startup=min(times) - started, work=max(times) - min(times))


async def kill_rounds(
    engine: KillEngine,
    workdir: Path,
    *,
    seed: int,
    kills: int,
    spans: Spans | None = None,
    concurrency: int = 2,
    budget: float | None = None,
    progress: Callable[[str], None] = print,
) -> tuple[list[KillRound], Spans]:
    """Run rounds until `kills` SIGKILLs interrupted work (or `budget` seconds passed); the rounds and the spans.

    Args:
        engine: The engine's round runner (`kill_engine`).
        workdir: A directory for the rounds' files.
        seed: Seeds the kill moments (fractions of the span).
        kills: Interrupting kills to reach.
        spans: The spans kill moments are drawn over; measured with an unkilled round if None.
        concurrency: Rounds in flight at once.
        budget: Start no round after this many seconds.
        progress: Receives one line per round.
    """
    if spans is None:
        spans = await measure_spans(engine, workdir / f'{engine.engine}-calibrate')
        progress(f'[{engine.engine}] spans {spans} s (startup, work of an unkilled round of {RUNS_PER_WORKER} runs)')
    started = time.monotonic()
    rounds: list[KillRound] = []
    # Plans for far more rounds than needed: kills that come after the runs finished do not count.
    plans = iter(plan_rounds(seed, kills * 10 + 10))
    slots = anyio.Semaphore(concurrency)

    def enough() -> bool:
        over_budget = budget is not None and time.monotonic() - started > budget
        return over_budget or sum(r.kills for r in rounds) >= kills

    async def one(plan: KillPlan) -> None:
        round_dir = workdir / f'{engine.engine}-{plan.index:04d}'
        round_dir.mkdir(parents=True)
        result = await kill_round(engine, plan, spans, round_dir)
        rounds.append(result)
        progress(result.describe() + f'  [kills so far {sum(r.kills for r in rounds)}]')

    async with anyio.create_task_group() as group:
        for plan in plans:
            await slots.acquire()
            if enough():
                slots.release()
                break

            async def run(plan: KillPlan = plan) -> None:
                try:
                    await one(plan)
                finally:
                    slots.release()

            group.start_soon(run)
    rounds.sort(key=lambda r: r.plan.index)
    return rounds, spans
