"""Per-thread CPU profiling shared by the profilers (`profile_temporal`, `profile_engines`).

A profiler per thread, timed by that thread's CPU clock: the engines run work on threads of their own (Temporal's
workflow activation pool, DBOS's and asyncio's executor threads, Prefect's API client loop), which a profiler of the
main thread would not see, and on a loaded machine a wall-clock profile would charge a function for the time its
thread waited for the GIL or the core.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import re
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, cast

_PROFILERS: list[tuple[str, cProfile.Profile]] = []
_LOCK = threading.Lock()


def cpu_profiler() -> cProfile.Profile:
    """A cProfile profiler timed by the calling thread's CPU clock (in seconds)."""
    # The thread's CPU time, not the wall clock: on a loaded machine, and with threads taking turns at the GIL, a
    # wall-clock profile charges a function for the time its thread waited.
    return cProfile.Profile(time.thread_time_ns, 1e-9)


def profile_this_thread() -> None:
    """Start a CPU-clock profiler in the calling thread and register it (a thread pool's `initializer`)."""
    profiler = cpu_profiler()
    with _LOCK:
        _PROFILERS.append((threading.current_thread().name, profiler))
    profiler.enable()


def _start_in_new_thread(frame: FrameType, event: str, arg: Any) -> None:
    # `threading.setprofile` runs this at a new thread's first call: it swaps itself for the thread's cProfile.
    sys.setprofile(None)
    profile_this_thread()


def profile_new_threads() -> None:
    """Profile every thread started from now on (Python threads only: the engines' own threads, executor threads).

    Threads already running are not profiled: call it before the engine starts its threads.
    """
    threading.setprofile(_start_in_new_thread)


def profile_main_thread() -> cProfile.Profile:
    """Register and return a (not yet enabled) profiler for the calling thread, listed as `MainThread`."""
    profiler = cpu_profiler()
    with _LOCK:
        _PROFILERS.append((threading.current_thread().name, profiler))
    return profiler


def thread_profilers() -> list[tuple[str, cProfile.Profile]]:
    """The registered profilers, with the name of the thread each one runs in."""
    with _LOCK:
        return list(_PROFILERS)


class _Snapshot:
    # What pstats.Stats reads: an object whose `create_stats()` fills `stats` (pstats' own call would also disable
    # the profiler, from the calling thread).
    def __init__(self, stats: dict[Any, Any]) -> None:
        self.stats = stats

    def create_stats(self) -> None:
        pass


def _minus(now: dict[Any, Any], before: dict[Any, Any]) -> dict[Any, Any]:
    """pstats entries `now` less `before`: what a profiler recorded in between (keys whose counts did not move drop)."""
    delta: dict[Any, Any] = {}
    for function, (cc, nc, tt, ct, callers) in now.items():
        old = before.get(function)
        if old is None:
            delta[function] = (cc, nc, tt, ct, dict(callers))
            continue
        if nc == old[1]:
            continue
        old_callers = old[4]
        edges = {}
        for caller, edge in callers.items():
            previous = old_callers.get(caller)
            edges[caller] = edge if previous is None else tuple(a - b for a, b in zip(edge, previous, strict=True))
        delta[function] = (cc - old[0], nc - old[1], tt - old[2], ct - old[3], edges)
    return delta


class ProfileWindow:
    """What the registered profilers record between two calls of `take`, merged per thread group.

    Profilers are never cleared (clearing one while its thread is inside profiled calls loses entries): each
    window is the difference of two snapshots.
    """

    def __init__(self) -> None:
        self._last: dict[int, dict[Any, Any]] = {}

    def _snapshots(self) -> list[tuple[str, int, dict[Any, Any]]]:
        taken: list[tuple[str, int, dict[Any, Any]]] = []
        for name, profiler in thread_profilers():
            profiler.snapshot_stats()
            taken.append((name, id(profiler), profiler.stats))
        return taken

    def start(self) -> None:
        """Mark the start of a window."""
        self._last = {key: stats for _, key, stats in self._snapshots()}

    def take(self) -> dict[str, pstats.Stats]:
        """What was recorded since `start` (or the previous `take`), per thread group (see `thread_group`)."""
        groups: dict[str, pstats.Stats] = {}
        for name, key, stats in self._snapshots():
            delta = _minus(stats, self._last.get(key, {}))
            self._last[key] = stats
            if not delta:
                continue
            group = thread_group(name)
            if group in groups:
                groups[group].add(_Snapshot(delta))  # pyright: ignore[reportArgumentType]
            else:
                groups[group] = pstats.Stats(_Snapshot(delta))  # pyright: ignore[reportArgumentType]
        return groups


def thread_group(name: str) -> str:
    """A thread's name without its pool index (`ThreadPoolExecutor-0_3` -> `ThreadPoolExecutor`)."""
    return re.sub(r'[-_]?\d+(_\d+)?$', '', name) or name


def thread_cpu_seconds() -> dict[int, tuple[str, float]]:
    """CPU seconds of every live Python thread so far, by thread id, with its name (Linux: per-thread clocks)."""
    seconds: dict[int, tuple[str, float]] = {}
    for thread in threading.enumerate():
        ident = thread.ident
        if ident is None:
            continue
        try:
            clock = time.pthread_getcpuclockid(ident)
            seconds[ident] = (thread.name, time.clock_gettime(clock))
        except (OSError, AttributeError):  # the thread just ended, or no per-thread clocks here
            continue
    return seconds


def thread_cpu_delta(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds per thread group between two `thread_cpu_seconds` readings (threads started in between from 0)."""
    delta: dict[str, float] = {}
    for ident, (name, seconds) in after.items():
        group = thread_group(name)
        delta[group] = delta.get(group, 0.0) + seconds - before.get(ident, (name, 0.0))[1]
    return delta


AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ('ours (durable_*)', ('/durable_kernel/', '/durable_dbos/', '/durable_prefect/', '/durable_temporal/')),
    ('bench workload (model function, floor)', ('/benchmarks/',)),
    ('pydantic-ai (agent graph)', ('/pydantic_ai/', '/pydantic_graph/', '/genai_prices/')),
    (
        'pydantic (validation, serialization)',
        ('/pydantic/', '/pydantic_core/', 'pydantic_core.', '/typing_inspection/'),
    ),
    ('engine: dbos', ('/dbos/',)),
    ('engine: prefect', ('/prefect/',)),
    ('engine: temporalio', ('/temporalio/',)),
    ('database (sqlite3, sqlalchemy, psycopg)', ('sqlite3', '/sqlalchemy/', '/psycopg', '/alembic/')),
    ('http (httpx, httpcore, h11, websockets)', ('/httpx/', '/httpcore/', '/h11/', '/websockets/', '/h2/')),
    ('async runtime (asyncio, anyio, threads)', ('/asyncio/', '/anyio/', '/sniffio/', 'threading.py', '/concurrent/')),
    ('opentelemetry, logging', ('/opentelemetry/', '/logging/', '/logfire')),
    ('json, copy, dataclasses, typing', ('/json/', 'copy.py', 'dataclasses.py', 'typing.py', '/uuid.py', 'json.')),
)
"""Areas a function's own time is charged to, by the first fragment found in its file name (or built-in's name)."""


def area_of(function: tuple[str, int, str]) -> str:
    """The area of a pstats function key `(file, line, name)`; built-ins are placed by their qualified name."""
    file, _, name = function
    text = file if file != '~' else name
    for area, fragments in AREAS:
        if any(fragment in text for fragment in fragments):
            return area
    return 'other (stdlib, built-ins)'


Entry = tuple[int, int, float, float, dict[tuple[str, int, str], tuple[int, int, float, float]]]
"""A pstats entry: primitive calls, calls, own time, cumulative time, and the same per caller."""


def entries(stats: pstats.Stats) -> dict[tuple[str, int, str], Entry]:
    """The entries of `stats`, keyed by `(file, line, function name)`."""
    return cast(dict[tuple[str, int, str], Entry], stats.stats)  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]


def own_time_by_area(stats: pstats.Stats) -> dict[str, float]:
    """Own time (seconds) of every function, summed per area."""
    areas: dict[str, float] = {}
    for function, (_, _, own, _, _) in entries(stats).items():
        area = area_of(function)
        areas[area] = areas.get(area, 0.0) + own
    return areas


def ours_inclusive(stats: pstats.Stats, fragments: Iterable[str]) -> float:
    """Seconds spent in, or under, functions of files matching `fragments`, entered from other code.

    The cumulative time of each call from a foreign caller into ours; a call back from foreign code into ours
    (a hook that pydantic-ai calls while ours runs it) is counted again, so this is an upper bound.
    """
    wanted = tuple(fragments)
    total = 0.0
    for function, (_, _, _, _, callers) in entries(stats).items():
        if not any(fragment in function[0] for fragment in wanted):
            continue
        for caller, edge in callers.items():
            if not any(fragment in caller[0] for fragment in wanted):
                total += edge[3]
    return total


def top(stats: pstats.Stats | None, key: str, limit: int, *restrictions: str) -> str:
    """The first `limit` functions of `stats` sorted by `key` (pstats' table without its preamble)."""
    if stats is None:
        return '(no samples)\n'
    out = io.StringIO()
    stats.stream = out  # pyright: ignore[reportAttributeAccessIssue]
    stats.sort_stats(key).print_stats(*restrictions, limit)
    # Drop pstats' preamble (file list, totals line stays) to keep the listing short.
    text = out.getvalue()
    return text[text.find('   ncalls') :] if '   ncalls' in text else text


@dataclass
class AreaTable:
    """Milliseconds per run by area, one column per measured variant."""

    columns: dict[str, dict[str, float]] = field(default_factory=dict[str, dict[str, float]])

    def add(self, column: str, areas: dict[str, float], runs: int) -> None:
        """Add `areas` (seconds over `runs` runs) to `column`, in ms per run."""
        target = self.columns.setdefault(column, {})
        for area, seconds in areas.items():
            target[area] = target.get(area, 0.0) + seconds * 1000 / runs

    def markdown(self) -> str:
        """The table in Markdown, areas in descending order of the first column."""
        names = list(self.columns)
        areas = sorted(
            {area for column in self.columns.values() for area in column},
            key=lambda area: -max(column.get(area, 0.0) for column in self.columns.values()),
        )
        lines = [f'| area | {" | ".join(names)} |', f'|---|{"---|" * len(names)}']
        for area in areas:
            cells = ' | '.join(f'{self.columns[name].get(area, 0.0):.1f}' for name in names)
            lines.append(f'| {area} | {cells} |')
        totals = ' | '.join(f'**{sum(self.columns[name].values()):.1f}**' for name in names)
        lines.append(f'| **total** | {totals} |')
        return '\n'.join(lines)
