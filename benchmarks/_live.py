"""The live-events section of `just bench`: delta latency to a consumer outside the run, and what a topic stores.

Per engine, the same streamed run (one tool call, then N text deltas a fixed pause apart) runs with an
`event_stream_topic` and a consumer (`stream_agent_events`) reading it concurrently, and without a topic, the two
interleaved (alternating which goes first) so that a change of machine load hits both alike. For every delta the
consumer receives, the latency is the time from the model yielding it to the consumer receiving it (both in this
process, `time.perf_counter()`). The stored bytes of each run are read back from the engine, so the bytes a topic
adds per run are the median with minus the median without.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._live_workload import SENT, LiveWorkload, delta_indexes
from ._stats import load_average, median, percentile

LIVE_RUN_TIMEOUT_S = 300.0
"""A streamed run that takes longer is recorded as an error."""


@dataclass(frozen=True)
class LiveOptions:
    """What the live-events section measures.

    Attributes:
        runs: Timed pairs of runs (one with a topic and a consumer, one without) after warm-up.
        warmup: Untimed pairs before them.
        deltas: Text deltas the model streams per run.
        pause_ms: Pause before each delta.
    """

    runs: int = 10
    warmup: int = 1
    deltas: int = 50
    pause_ms: float = 10.0

    def total_steps(self) -> int:
        """Progress steps: two runs per pair."""
        return 2 * (self.runs + self.warmup)


class LiveTarget(ABC):
    """One engine's streamed run, with and without a topic."""

    description: str = ''
    """What runs: the agent class and the consumer."""
    store_metric: str = ''
    """What `stored_bytes` measures on this engine."""
    consumer: str = ''
    """How the consumer reads (its polling), for the report."""

    @abstractmethod
    async def run(self, workload: LiveWorkload, run_id: str, on_event: Callable[[object], None] | None) -> None:
        """Run `workload` to completion: with a topic and a consumer calling `on_event` per event if given."""

    @abstractmethod
    async def stored_bytes(self, run_id: str, topic: bool) -> int | None:
        """The bytes the engine stored for the finished run `run_id` (`topic`: whether it had one)."""

    async def stored_detail(self, run_id: str) -> dict[str, int]:
        """Where a run with a topic stored its bytes, by kind of record, where the engine tells them apart."""
        return {}


@dataclass
class _Samples:
    latency_ms: list[float] = field(default_factory=list[float])
    wall_ms: dict[bool, list[float]] = field(default_factory=lambda: {False: [], True: []})
    stored: dict[bool, list[int]] = field(default_factory=lambda: {False: [], True: []})
    missing: int = 0
    events: list[int] = field(default_factory=list[int])
    detail: dict[str, list[int]] = field(default_factory=dict[str, list[int]])
    errors: list[str] = field(default_factory=list[str])


async def _one(target: LiveTarget, options: LiveOptions, topic: bool, samples: _Samples | None) -> None:
    run_id = f'bench-live-{"topic" if topic else "quiet"}-{uuid.uuid4().hex[:12]}'
    workload = LiveWorkload(run_id, options.deltas, options.pause_ms)
    received: dict[int, float] = {}
    events = 0

    def on_event(event: object) -> None:
        nonlocal events
        now = time.perf_counter()
        events += 1
        for index in delta_indexes(event):
            received.setdefault(index, now)

    start = time.perf_counter()
    try:
        await asyncio.wait_for(target.run(workload, run_id, on_event if topic else None), LIVE_RUN_TIMEOUT_S)
    except Exception as error:  # reported; the other runs still go on
        if samples is not None:
            samples.errors.append(f'{"with" if topic else "without"} topic: {type(error).__name__}: {error}'[:500])
        return
    wall_ms = (time.perf_counter() - start) * 1000
    sent = {index: SENT.pop((run_id, index)) for index in range(options.deltas) if (run_id, index) in SENT}
    if samples is None:
        return
    samples.wall_ms[topic].append(wall_ms)
    stored = await target.stored_bytes(run_id, topic)
    if stored is not None:
        samples.stored[topic].append(stored)
    if topic:
        for kind, size in (await target.stored_detail(run_id)).items():
            samples.detail.setdefault(kind, []).append(size)
        samples.events.append(events)
        samples.missing += sum(index not in received for index in sent)
        samples.latency_ms += [(received[index] - sent[index]) * 1000 for index in sent if index in received]


async def measure_live(
    target: LiveTarget, options: LiveOptions, progress: Callable[[str, int], None] | None = None
) -> dict[str, Any]:
    """Measure `target`: warm-up pairs, then timed pairs alternating which of the two runs goes first."""
    samples = _Samples()
    done = 0
    load_before = load_average()
    for index in range(options.warmup + options.runs):
        timed = index >= options.warmup
        for topic in (True, False) if index % 2 else (False, True):
            await _one(target, options, topic, samples if timed else None)
            done += 1
            if progress is not None:
                progress(f'live events {"with" if topic else "without"} topic', done)
    load_after = load_average()
    with_bytes, without_bytes = samples.stored[True], samples.stored[False]
    extra = median(with_bytes) - median(without_bytes) if with_bytes and without_bytes else None
    return {
        'description': target.description,
        'consumer': target.consumer,
        'store_metric': target.store_metric,
        'runs': options.runs,
        'deltas': options.deltas,
        'pause_ms': options.pause_ms,
        'latency_ms': samples.latency_ms,
        'latency_median_ms': median(samples.latency_ms) if samples.latency_ms else None,
        'latency_p90_ms': percentile(samples.latency_ms, 0.9) if samples.latency_ms else None,
        'latency_max_ms': max(samples.latency_ms) if samples.latency_ms else None,
        'missing_deltas': samples.missing,
        'events_per_run': median(samples.events) if samples.events else None,
        'wall_ms_with_topic': median(samples.wall_ms[True]) if samples.wall_ms[True] else None,
        'wall_ms_without_topic': median(samples.wall_ms[False]) if samples.wall_ms[False] else None,
        'stored_bytes_with_topic': with_bytes,
        'stored_bytes_without_topic': without_bytes,
        'extra_bytes_per_run': extra,
        'stored_detail_with_topic': {kind: median(sizes) for kind, sizes in samples.detail.items()},
        'load_before': load_before,
        'load_after': load_after,
        'errors': samples.errors,
    }
