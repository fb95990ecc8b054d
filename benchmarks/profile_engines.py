"""Where DBOS's and Prefect's CPU goes: `ours` against `floor` and `plain`, profiled per thread with the CPU clock.

`uv run python -m benchmarks.profile_engines --engine dbos --concurrency 1` builds the benchmark's own variants
(`benchmarks/_dbos.py`, `benchmarks/_prefect.py`: the same workload, agents, floor and engine settings as `just
bench`), warms them up, then runs `--rounds` batches of `--runs` runs of each variant, interleaved (the order flipped
from one round to the next), with `--concurrency` runs in flight. Every Python thread started from then on gets its
own cProfile timed by its CPU clock (DBOS's executor and background threads, AnyIO's worker threads, Prefect's global
event loop, events worker and log worker threads), the main thread (the event loop) too. It prints, per variant:

- wall time per run (median and p90, one run in flight) or runs/s (many in flight), the process's CPU per run, and
  (Prefect) the CPU per run of the ephemeral server, another process that no profiler sees;
- CPU ms per run per thread group, read from the threads' CPU clocks (`--no-profile`: without the profilers'
  overhead, the figures to quote);
- own time in ms per run by area (ours = `durable_*` frames, pydantic-ai, pydantic, the engine, the database, http,
  the async runtime), and the time spent in and under ours' frames;
- (Prefect) how many runs met an HTTP 503 from the server, the cause of Prefect's ~2 s runs: the server's SQLite
  answers `database is locked` when `POST /flow_runs/` overlaps the task-run recorder's bulk write, the server
  turns that into a 503, and Prefect's client retries after 2 s (docs/benchmarks.md, "Where the CPU goes (Prefect)");
- with `--top N`, the top functions by own and cumulative time per variant and thread group.

Profiles charge CPU, not waiting, so a loaded machine disturbs them little; the load average is printed beside them.
`uv run just bench-profile --engine prefect --rounds 3` is the same command.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import pstats
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._engines import variants_of
from ._harness import Variant
from ._profiling import (
    AREAS,
    AreaTable,
    ProfileWindow,
    ours_inclusive,
    own_time_by_area,
    profile_main_thread,
    profile_new_threads,
    thread_cpu_delta,
    thread_cpu_seconds,
    top,
)
from ._stats import median, percentile
from ._workload import Workload

_OURS_FILES = AREAS[0][1]


@dataclass
class _Measured:
    """What the batches of one variant added up to."""

    runs: int = 0
    walls: list[float] = field(default_factory=list[float])
    batch_seconds: float = 0.0
    cpu_seconds: float = 0.0
    server_seconds: float = 0.0
    threads: dict[str, float] = field(default_factory=dict[str, float])
    groups: dict[str, pstats.Stats] = field(default_factory=dict[str, pstats.Stats])
    retried_runs: int = 0
    retried_walls: list[float] = field(default_factory=list[float])


class _ServiceUnavailable(logging.Handler):
    """Counts the HTTP 503 answers httpx logs (Prefect's client retries each after ~2 s)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if '503 Service Unavailable' in record.getMessage():
            self.count += 1


def _server_cpu_reader(engine: str) -> Callable[[], float]:
    """CPU seconds so far of the engine's server process (Prefect's ephemeral server), 0 where it has none."""
    if engine != 'prefect':
        return lambda: 0.0
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer._instances.get(None)  # pyright: ignore[reportPrivateUsage]
    process = server.server_process if server is not None else None
    if process is None:
        return lambda: 0.0
    stat = Path(f'/proc/{process.pid}/stat')
    ticks = os.sysconf('SC_CLK_TCK')

    def read() -> float:
        try:
            fields = stat.read_text().rsplit(')', 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime, fields 14 and 15 of proc(5)

    return read


async def _batch(
    variant: Variant, workload: Workload, runs: int, concurrency: int, unavailable: _ServiceUnavailable
) -> list[tuple[float, bool]]:
    """Wall time of each run, and whether a 503 was answered while it ran (meaningful one run at a time)."""
    semaphore = asyncio.Semaphore(concurrency)
    walls: list[tuple[float, bool]] = []

    async def one() -> None:
        async with semaphore:
            started, answered = time.perf_counter(), unavailable.count
            await variant.run(workload, f'prof-{variant.name}-{uuid.uuid4().hex}')
            walls.append((time.perf_counter() - started, unavailable.count > answered))

    await asyncio.gather(*(one() for _ in range(runs)))
    return walls


async def _profile(
    engine: str,
    names: Sequence[str],
    *,
    concurrency: int,
    runs: int,
    rounds: int,
    warmup: int,
    profile: bool,
    dbos_database: str,
) -> dict[str, _Measured]:
    workload = Workload()
    measured = {name: _Measured() for name in names}
    unavailable = _ServiceUnavailable()
    httpx_logger = logging.getLogger('httpx')
    level, propagate = httpx_logger.level, httpx_logger.propagate
    if engine == 'prefect':
        # httpx logs every response at INFO: counting the 503s there needs no change to Prefect's client. Only
        # counted: not passed on to Prefect's console handler, whose formatting would cost every variant CPU.
        httpx_logger.addHandler(unavailable)
        httpx_logger.setLevel(logging.INFO)
        httpx_logger.propagate = False
    if profile:
        profile_new_threads()
    main_profiler = profile_main_thread() if profile else None
    factory, _ = variants_of(engine, list(names), dbos_database=dbos_database)
    async with factory() as variants:
        server_cpu = _server_cpu_reader(engine)
        for variant in variants:
            await _batch(variant, workload, warmup, min(concurrency, max(warmup, 1)), unavailable)
        window = ProfileWindow()
        if main_profiler is not None:
            main_profiler.enable()
        for round_index in range(rounds):
            order = variants if round_index % 2 == 0 else variants[::-1]
            for variant in order:
                result = measured[variant.name]
                if profile:
                    window.start()
                threads_before, retries_before = thread_cpu_seconds(), unavailable.count
                server_before, cpu_before, wall_before = server_cpu(), time.process_time(), time.perf_counter()
                walls = await _batch(variant, workload, runs, concurrency, unavailable)
                result.batch_seconds += time.perf_counter() - wall_before
                result.cpu_seconds += time.process_time() - cpu_before
                result.server_seconds += server_cpu() - server_before
                for group, seconds in thread_cpu_delta(threads_before, thread_cpu_seconds()).items():
                    result.threads[group] = result.threads.get(group, 0.0) + seconds
                result.retried_runs += unavailable.count - retries_before
                result.runs += len(walls)
                result.walls.extend(wall for wall, _ in walls)
                result.retried_walls.extend(wall for wall, retried in walls if retried)
                if profile:
                    for group, stats in window.take().items():
                        if group in result.groups:
                            result.groups[group].add(stats)
                        else:
                            result.groups[group] = stats
        if main_profiler is not None:
            main_profiler.disable()
    httpx_logger.removeHandler(unavailable)
    httpx_logger.setLevel(level)
    httpx_logger.propagate = propagate
    return measured


def _merged(groups: dict[str, pstats.Stats]) -> pstats.Stats | None:
    if not groups:
        return None
    merged = pstats.Stats()
    for stats in groups.values():
        merged.add(stats)
    return merged


def _report(engine: str, concurrency: int, measured: dict[str, _Measured], limit: int, dump: Path | None) -> str:
    lines: list[str] = []
    names = list(measured)
    header = f'| metric | {" | ".join(names)} |'
    lines += [header, f'|---|{"---|" * len(names)}']

    def row(label: str, value: Callable[[_Measured], str]) -> None:
        lines.append(f'| {label} | {" | ".join(value(measured[name]) for name in names)} |')

    row('runs', lambda m: str(m.runs))
    if concurrency == 1:
        row('wall median ms', lambda m: f'{median(m.walls) * 1000:.1f}')
        row('wall p90 ms', lambda m: f'{percentile(m.walls, 0.9) * 1000:.1f}')
        row('runs over 1 s', lambda m: str(sum(wall > 1.0 for wall in m.walls)))
    row('runs/s', lambda m: f'{m.runs / m.batch_seconds:.1f}')
    row('process CPU ms/run', lambda m: f'{m.cpu_seconds * 1000 / m.runs:.1f}')
    if engine == 'prefect':
        row('server process CPU ms/run', lambda m: f'{m.server_seconds * 1000 / m.runs:.1f}')
        row('HTTP 503 answers (each: a ~2 s client retry)', lambda m: str(m.retried_runs))
        if concurrency == 1:
            row('runs that met a 503', lambda m: str(len(m.retried_walls)))
            row(
                'runs over 1 s without a 503',
                lambda m: str(sum(wall > 1.0 for wall in m.walls) - sum(wall > 1.0 for wall in m.retried_walls)),
            )
            row(
                'wall median ms, runs with / without a 503',
                lambda m: (
                    (f'{median(m.retried_walls) * 1000:.0f} / ' if m.retried_walls else '– / ')
                    + f'{median([w for w in m.walls if w not in m.retried_walls] or [0.0]) * 1000:.0f}'
                ),
            )
    groups = sorted(
        {group for m in measured.values() for group in m.threads},
        key=lambda group: -max(m.threads.get(group, 0.0) for m in measured.values()),
    )
    for group in groups:
        if max(m.threads.get(group, 0.0) * 1000 / m.runs for m in measured.values()) >= 0.05:
            row(f'thread CPU ms/run: {group}', lambda m, g=group: f'{m.threads.get(g, 0.0) * 1000 / m.runs:.1f}')
    if not any(m.groups for m in measured.values()):
        return '\n'.join(lines)
    areas = AreaTable()
    for name in names:
        merged = _merged(measured[name].groups)
        if merged is not None:
            areas.add(name, own_time_by_area(merged), measured[name].runs)
    lines += ['', 'Own time by area, ms per run (profiled: cProfile adds its overhead to every call):', '']
    lines.append(areas.markdown())
    lines.append('')
    for name in names:
        merged = _merged(measured[name].groups)
        if merged is None:
            continue
        inclusive = ours_inclusive(merged, _OURS_FILES) * 1000 / measured[name].runs
        lines.append(f'- {name}: in and under durable_* frames {inclusive:.1f} ms per run (upper bound)')
        if dump is not None:
            merged.dump_stats(str(dump / f'{engine}-{name}-c{concurrency}.pstats'))
            for group, stats in measured[name].groups.items():
                stats.dump_stats(str(dump / f'{engine}-{name}-c{concurrency}-{group.strip(" -_")}.pstats'))
    for name in names if limit else ():
        for group, stats in measured[name].groups.items():
            for key in ('tottime', 'cumulative'):
                lines.append(f'\n=== {name}: {group} thread(s), by {key} ===')
                lines.append(top(stats, key, limit))
    return '\n'.join(lines)


def main() -> None:
    """Entry point of `python -m benchmarks.profile_engines`."""
    parser = argparse.ArgumentParser(
        prog='python -m benchmarks.profile_engines',
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument('--engine', choices=('dbos', 'prefect'), default='dbos')
    parser.add_argument(
        '--variants', default='ours,floor,plain', help='comma-separated: ours, floor, plain, reference, reference+steps'
    )
    parser.add_argument('--concurrency', type=int, default=1, help='runs in flight (DBOS at 200: the c200 figure)')
    parser.add_argument('--runs', type=int, default=20, help='runs per variant in each round')
    parser.add_argument('--rounds', type=int, default=2, help='interleaved rounds (variant order flipped each round)')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--top', type=int, default=0, help='also list this many functions per variant and thread')
    parser.add_argument('--no-profile', action='store_true', help='thread CPU clocks only, without the profilers')
    parser.add_argument('--dbos-database', choices=('sqlite', 'postgres'), default='sqlite')
    parser.add_argument(
        '--dump', type=Path, help='write pstats files here: per variant, all threads and each thread group'
    )
    args = parser.parse_args()
    names = [name.strip() for name in args.variants.split(',') if name.strip()]
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    measured = asyncio.run(
        _profile(
            args.engine,
            names,
            concurrency=args.concurrency,
            runs=args.runs,
            rounds=args.rounds,
            warmup=args.warmup,
            profile=not args.no_profile,
            dbos_database=args.dbos_database,
        )
    )
    if args.dump is not None:
        args.dump.mkdir(parents=True, exist_ok=True)
    print(
        f'\n{args.engine}: {args.rounds} rounds x {args.runs} runs per variant, {args.concurrency} in flight, '
        f'{"CPU clocks only" if args.no_profile else "profiled"}; load (1 min) {load_before:.2f} before, '
        f'{os.getloadavg()[0]:.2f} after; {time.perf_counter() - started:.0f} s\n'
    )
    print(_report(args.engine, args.concurrency, measured, args.top, args.dump))


if __name__ == '__main__':
    main()
