"""The engine-independent driver: warm-up, timed runs, concurrency and long conversations for each variant.

Each engine module yields a list of [`Variant`][benchmarks._harness.Variant]s that share one process and one
server; the driver interleaves their runs (round-robin) so that a change of machine load hits every variant alike.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._stats import growth_exponent, median, percentile
from ._workload import Workload

RUN_TIMEOUT_S = 300.0
"""A run that takes longer is recorded as an error (a hung workflow must not hang the benchmark)."""

FACT_RUNS = 3
"""Timed runs per variant whose durable units and stored bytes are read back from the engine."""

ProgressCallback = Callable[[str, int], None]
"""Called as `(description, completed_steps)` while an engine is being measured."""


@dataclass(frozen=True)
class Options:
    """What to measure.

    Attributes:
        workload: The main workload (T turns, K tools per turn).
        runs: Timed sequential runs per variant (after warm-up).
        warmup: Untimed runs per variant before the timed ones.
        concurrency: In-flight runs of each throughput measurement (besides concurrency 1), e.g. 50 and 200.
        concurrent_runs: Runs started in each throughput measurement; `None`: as many as may be in flight.
        long_turns: Turn counts of the long conversation (one tool call per turn).
        long_result_bytes: Size of the one tool result per turn in the long conversation.
        long_runs: Timed runs per turn count in the long conversation.
        event_runs: Timed runs of the main workload with an event stream handler set.
    """

    workload: Workload = Workload()
    runs: int = 10
    warmup: int = 2
    concurrency: tuple[int, ...] = (50, 200)
    concurrent_runs: int | None = None
    long_turns: tuple[int, ...] = (5, 10, 20, 40)
    long_result_bytes: int = 2048
    long_runs: int = 1
    event_runs: int = 3

    def long_workloads(self) -> list[Workload]:
        """The long-conversation workloads, one per turn count."""
        return [Workload(turns=turns, tools=1, result_bytes=self.long_result_bytes) for turns in self.long_turns]

    def runs_at(self, concurrency: int) -> int:
        """Runs started in the throughput measurement with `concurrency` in flight."""
        return self.concurrent_runs or concurrency

    def total_steps(self, variants: int) -> int:
        """Progress steps for one engine with `variants` variants."""
        per_variant = (
            self.warmup
            + self.runs
            + self.event_runs
            + sum(self.runs_at(level) for level in self.concurrency)
            + len(self.long_turns) * self.long_runs
        )
        return per_variant * variants


@dataclass(frozen=True)
class RunFacts:
    """What the engine recorded for one run.

    Attributes:
        units: Durable units (activities, steps, tasks) the run recorded.
        store_bytes: Bytes the engine stored for the run (Temporal history, DBOS system database), if measured.
        export_bytes: The same record in the engine's export format (Temporal: history JSON), if there is one.
    """

    units: int
    store_bytes: int | None = None
    export_bytes: int | None = None


class Variant(ABC):
    """One way to run the workload on an engine (ours, the reference, the bare-engine floor, the plain agent)."""

    name: str
    """Short name: `ours`, `reference`, `reference+steps`, `floor` or `plain`."""
    description: str = ''
    """One line on what the variant is."""
    events: Variant | None = None
    """The same variant with an event stream handler set on the agent, if it has one."""

    @abstractmethod
    async def run(self, workload: Workload, run_id: str) -> None:
        """Run `workload` once to completion; `run_id` is unique and may name the workflow/flow run."""

    @abstractmethod
    async def facts(self, run_id: str) -> RunFacts:
        """What the engine recorded for the finished run `run_id` (not timed)."""

    def expected_units(self, workload: Workload) -> int:
        """Durable units a run of `workload` should record (checked by the smoke test)."""
        return workload.units


@dataclass
class VariantResult:
    """Measurements of one variant on one engine (JSON-ready through `to_json`)."""

    name: str
    description: str
    wall_ms: list[float] = field(default_factory=list[float])
    cpu_ms: list[float] = field(default_factory=list[float])
    units: list[int] = field(default_factory=list[int])
    store_bytes: list[int] = field(default_factory=list[int])
    export_bytes: list[int] = field(default_factory=list[int])
    expected_units: int = 0
    runs_per_s: dict[int, float] = field(default_factory=dict[int, float])
    cpu_ms_per_run: dict[int, float] = field(default_factory=dict[int, float])
    long: dict[int, dict[str, float | int | None]] = field(default_factory=dict[int, dict[str, float | int | None]])
    events: dict[str, float | int | None] = field(default_factory=dict[str, float | int | None])
    errors: list[str] = field(default_factory=list[str])

    def summary(self) -> dict[str, Any]:
        """Median/p90 wall time, units, bytes, throughput, long-conversation growth."""
        long_bytes = [
            (float(turns), float(row['store_bytes'])) for turns, row in self.long.items() if row['store_bytes']
        ]
        long_wall = [(float(turns), float(row['median_ms'] or 0)) for turns, row in self.long.items()]
        return {
            'median_ms': median(self.wall_ms),
            'p90_ms': percentile(self.wall_ms, 0.9),
            'cpu_ms': median(self.cpu_ms),
            'units': max(set(self.units), key=self.units.count) if self.units else None,
            'units_consistent': len(set(self.units)) <= 1,
            'expected_units': self.expected_units,
            'store_bytes': int(median(self.store_bytes)) if self.store_bytes else None,
            'export_bytes': int(median(self.export_bytes)) if self.export_bytes else None,
            'runs_per_s': {str(key): value for key, value in self.runs_per_s.items()},
            'cpu_ms_per_run': {str(key): value for key, value in self.cpu_ms_per_run.items()},
            'long': {str(key): value for key, value in self.long.items()},
            'events': self.events,
            'store_growth_exponent': growth_exponent(long_bytes),
            'wall_growth_exponent': growth_exponent(long_wall),
            'errors': self.errors,
        }

    def to_json(self) -> dict[str, Any]:
        """Everything, raw samples included."""
        return {
            'name': self.name,
            'description': self.description,
            'wall_ms': self.wall_ms,
            'cpu_ms_per_sequential_run': self.cpu_ms,
            'units_per_run': self.units,
            'store_bytes_per_run': self.store_bytes,
            **self.summary(),
        }


def _run_id(variant: Variant) -> str:
    return f'bench-{variant.name.replace("+", "-")}-{uuid.uuid4().hex[:12]}'


async def _timed(variant: Variant, workload: Workload, result: VariantResult) -> str | None:
    run_id = _run_id(variant)
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        await asyncio.wait_for(variant.run(workload, run_id), RUN_TIMEOUT_S)
    except Exception as error:  # a failed variant is reported, the others still run
        result.errors.append(f'{type(error).__name__}: {error}'[:500])
        return None
    # The CPU of this whole process (every thread: the worker's Python and its Rust core, the client, DBOS's
    # database work): only this run is in flight, and the other variants' idle workers cost next to nothing.
    # Less sensitive to other jobs on the machine than the wall clock, which measures their time slices too.
    result.cpu_ms.append((time.process_time() - cpu_start) * 1000)
    result.wall_ms.append((time.perf_counter() - start) * 1000)
    return run_id


async def _run_concurrently(
    variant: Variant, workload: Workload, concurrency: int, count: int, on_done: Callable[[], None]
) -> tuple[list[str], float, float]:
    """Start `count` runs with at most `concurrency` in flight; return their errors, elapsed and CPU seconds."""
    semaphore = asyncio.Semaphore(concurrency)
    failures: list[str] = []

    async def one() -> None:
        async with semaphore:
            try:
                await asyncio.wait_for(variant.run(workload, _run_id(variant)), RUN_TIMEOUT_S)
            except Exception as error:
                failures.append(f'{type(error).__name__}: {error}'[:500])
            on_done()

    start, cpu_start = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one() for _ in range(count)))
    return failures, time.perf_counter() - start, time.process_time() - cpu_start


async def _measure_events(
    variants: Sequence[Variant],
    options: Options,
    results: dict[str, VariantResult],
    step: Callable[[str, int], None],
) -> None:
    """The main workload with an event stream handler: what handling events costs each variant."""
    with_events = [variant for variant in variants if variant.events is not None]
    samples = {variant.name: VariantResult(variant.name, '') for variant in with_events}
    facts: dict[str, RunFacts] = {}
    for _ in range(options.event_runs):
        for variant in with_events:
            assert variant.events is not None
            run_id = await _timed(variant.events, options.workload, samples[variant.name])
            if run_id is not None and variant.name not in facts:
                facts[variant.name] = await variant.events.facts(run_id)
            step(f'event handler {variant.name}', 1)
    for variant in variants:
        if variant.events is None:
            step(f'event handler {variant.name}', options.event_runs)
    for variant in with_events:
        sample, fact = samples[variant.name], facts.get(variant.name)
        results[variant.name].errors.extend(f'with event handler: {error}' for error in sample.errors)
        results[variant.name].events = {
            'median_ms': median(sample.wall_ms) if sample.wall_ms else None,
            'units': fact.units if fact else None,
            'store_bytes': fact.store_bytes if fact else None,
        }


async def measure(
    variants: Sequence[Variant], options: Options, progress: ProgressCallback | None = None
) -> list[VariantResult]:
    """Measure every variant: warm-up, timed runs, throughput at concurrency 1 and N, long conversations."""
    results = {variant.name: VariantResult(variant.name, variant.description) for variant in variants}
    done = 0

    def step(description: str, count: int = 1) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(description, done)

    workload = options.workload
    for variant in variants:
        results[variant.name].expected_units = variant.expected_units(workload)

    for _ in range(options.warmup):
        for variant in variants:
            await _timed(variant, workload, VariantResult('warmup', ''))
            step(f'warm-up {variant.name}')

    for index in range(options.runs):
        for variant in variants:
            result = results[variant.name]
            run_id = await _timed(variant, workload, result)
            # Units and bytes are deterministic: a few runs show it, and inspecting is slow on some engines.
            if run_id is not None and index < FACT_RUNS:
                facts = await variant.facts(run_id)
                result.units.append(facts.units)
                if facts.store_bytes is not None:
                    result.store_bytes.append(facts.store_bytes)
                if facts.export_bytes is not None:
                    result.export_bytes.append(facts.export_bytes)
            step(f'timed runs {variant.name}')

    await _measure_events(variants, options, results, step)

    for variant in variants:
        result = results[variant.name]
        # At concurrency 1 the timed sequential runs give the throughput and the CPU per run.
        if result.wall_ms:
            result.runs_per_s[1] = len(result.wall_ms) / (sum(result.wall_ms) / 1000)
            result.cpu_ms_per_run[1] = sum(result.cpu_ms) / len(result.cpu_ms)
    for position, concurrency in enumerate(options.concurrency):
        count = options.runs_at(concurrency)
        # One batch per variant, back to back; the order flips from one level to the next so that neither the
        # first nor the last variant always meets the machine's state (or the server's backlog) alone.
        for variant in variants if position % 2 == 0 else list(reversed(variants)):
            result = results[variant.name]
            failures, elapsed, cpu = await _run_concurrently(
                variant,
                workload,
                concurrency,
                count,
                functools.partial(step, f'concurrency {concurrency} {variant.name}'),
            )
            if failures:
                result.errors.append(f'{len(failures)}/{count} runs failed at concurrency {concurrency}: {failures[0]}')
            result.runs_per_s[concurrency] = (count - len(failures)) / elapsed
            if count > len(failures):
                result.cpu_ms_per_run[concurrency] = cpu * 1000 / (count - len(failures))

    for long_workload in options.long_workloads():
        samples: dict[str, VariantResult] = {variant.name: VariantResult(variant.name, '') for variant in variants}
        facts_by_variant: dict[str, RunFacts] = {}
        for _ in range(options.long_runs):
            for variant in variants:
                run_id = await _timed(variant, long_workload, samples[variant.name])
                if run_id is not None and variant.name not in facts_by_variant:
                    facts_by_variant[variant.name] = await variant.facts(run_id)
                step(f'long T={long_workload.turns} {variant.name}')
        for variant in variants:
            sample = samples[variant.name]
            facts = facts_by_variant.get(variant.name)
            results[variant.name].errors.extend(sample.errors)
            results[variant.name].long[long_workload.turns] = {
                'median_ms': median(sample.wall_ms) if sample.wall_ms else None,
                'units': facts.units if facts else None,
                'expected_units': variant.expected_units(long_workload),
                'store_bytes': facts.store_bytes if facts else None,
                'export_bytes': facts.export_bytes if facts else None,
            }
    return [results[variant.name] for variant in variants]
