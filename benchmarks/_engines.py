"""Run every variant of one engine in this process, against one server, and return the engine's results."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from ._harness import Options, ProgressCallback, Variant, measure
from ._live import LiveOptions, LiveTarget, measure_live
from ._stats import load_average

ENGINES = ('temporal', 'dbos', 'prefect')

MAX_CONCURRENCY: dict[str, int] = {'prefect': 10}
"""Runs in flight per engine at most, whatever `--concurrency` says (change it with `--prefect-concurrency`).

Prefect's ephemeral test server (one process on SQLite) answers `503 Service Unavailable` to a good share of 50
concurrent flow runs on 2 cores, and takes minutes to get through them: the throughput would measure the test
server's overload, not the agents.
"""


VARIANTS = ('ours', 'reference', 'reference+steps', 'floor', 'plain')


def engine_variant_names(engine: str, requested: Sequence[str] | None = None) -> list[str]:
    """The variants to run on `engine`: the requested ones it supports, `ours` only once its package works."""
    supported = ['ours', 'reference', 'floor', 'plain']
    if engine == 'dbos':
        supported.insert(2, 'reference+steps')
    names = [name for name in supported if requested is None or name in requested]
    if 'ours' in names and not ours_available(engine):
        names.remove('ours')
    return names


_OURS: dict[str, tuple[str, str]] = {
    'temporal': ('durable_temporal', 'TemporalAgent'),
    'dbos': ('durable_dbos', 'DBOSAgent'),
    'prefect': ('durable_prefect', 'PrefectAgent'),
}


def ours_available(engine: str) -> bool:
    """Whether our package for `engine` can be imported with the agent class the benchmark wraps."""
    package, agent_class = _OURS[engine]
    if importlib.util.find_spec(package) is None:
        return False
    try:
        return hasattr(importlib.import_module(package), agent_class)
    except ImportError:
        return False


def variants_of(
    engine: str,
    names: Sequence[str],
    *,
    dbos_database: str = 'sqlite',
    prefect_database: str = 'sqlite',
    workflow_threads: int = 0,
) -> tuple[Callable[[], AbstractAsyncContextManager[list[Variant]]], str | None]:
    """A factory of the engine's variants (server started on entry, stopped on exit) and its stored-bytes metric."""
    if engine == 'temporal':
        from ._temporal import STORE_METRIC, temporal_variants

        return lambda: temporal_variants(names, workflow_threads), STORE_METRIC
    if engine == 'dbos':
        from ._dbos import STORE_METRIC, dbos_variants

        return lambda: dbos_variants(names, dbos_database), STORE_METRIC
    if engine == 'prefect':
        from ._prefect import STORE_METRIC, prefect_variants

        return lambda: prefect_variants(names, prefect_database), STORE_METRIC
    raise ValueError(f'unknown engine {engine!r}: choose one of {", ".join(ENGINES)}')


async def run_engine(
    engine: str,
    options: Options,
    names: Sequence[str],
    *,
    dbos_database: str = 'sqlite',
    prefect_database: str = 'sqlite',
    workflow_threads: int = 0,
    progress: ProgressCallback | None = None,
    on_ready: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Start the engine, measure the variants `names`, stop the engine; return JSON-ready results.

    Args:
        engine: `temporal`, `dbos` or `prefect`.
        options: What to measure.
        names: Variants to run (see [`engine_variant_names`][benchmarks._engines.engine_variant_names]).
        dbos_database: `sqlite` or `postgres` (DBOS only).
        prefect_database: `sqlite` or `postgres`, the Prefect server's database (Prefect only).
        workflow_threads: Threads per worker for workflow activations, 0 for the SDK's default (Temporal only).
        progress: Called as runs complete.
        on_ready: Called with the number of progress steps once the server is up.
    """
    cap = MAX_CONCURRENCY.get(engine)
    if cap is not None and max(options.concurrency) > cap:
        options = dataclasses.replace(
            options,
            concurrency=tuple(sorted({min(level, cap) for level in options.concurrency})),
            concurrent_runs=min(options.concurrent_runs, 2 * cap) if options.concurrent_runs else 2 * cap,
        )
    factory, store_metric = variants_of(
        engine,
        names,
        dbos_database=dbos_database,
        prefect_database=prefect_database,
        workflow_threads=workflow_threads,
    )
    start = time.perf_counter()
    context = factory()
    variants: list[Variant]
    async with context as variants:
        if on_ready is not None:
            on_ready(options.total_steps(len(variants)))
        # Per engine: the engines run one after the other, and the machine's load may change in between.
        load_before = load_average()
        results = await measure(variants, options, progress)
        load_after = load_average()
    return {
        'store_metric': store_metric,
        'concurrency': list(options.concurrency),
        'workflow_threads': workflow_threads if engine == 'temporal' else None,
        'database': {'dbos': dbos_database, 'prefect': prefect_database}.get(engine),
        'variants': [result.to_json() for result in results],
        'load_before': load_before,
        'load_after': load_after,
        'elapsed_s': time.perf_counter() - start,
    }


def live_target_of(
    engine: str, *, dbos_database: str = 'sqlite', prefect_database: str = 'sqlite'
) -> AbstractAsyncContextManager[LiveTarget]:
    """The engine's live-events target (server started on entry, stopped on exit)."""
    if engine == 'temporal':
        from ._temporal import temporal_live

        return temporal_live()
    if engine == 'dbos':
        from ._dbos import dbos_live

        return dbos_live(dbos_database)
    if engine == 'prefect':
        from ._prefect import prefect_live

        return prefect_live(prefect_database)
    raise ValueError(f'unknown engine {engine!r}: choose one of {", ".join(ENGINES)}')


async def run_live(
    engine: str,
    options: LiveOptions,
    *,
    dbos_database: str = 'sqlite',
    prefect_database: str = 'sqlite',
    progress: ProgressCallback | None = None,
    on_ready: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Start the engine, measure its live events (see `benchmarks._live`), stop the engine; return JSON-ready results.

    Args:
        engine: `temporal`, `dbos` or `prefect`.
        options: What to measure.
        dbos_database: `sqlite` or `postgres` (DBOS only).
        prefect_database: `sqlite` or `postgres`, the Prefect server's database (Prefect only).
        progress: Called as runs complete.
        on_ready: Called with the number of progress steps once the server is up.
    """
    if not ours_available(engine):
        return {'error': f'our {engine} package is not installed'}
    if engine == 'temporal' and importlib.util.find_spec('temporalio.contrib.workflow_streams') is None:
        return {'error': 'temporalio < 1.27.0 has no Workflow Streams, which live events on Temporal need'}
    start = time.perf_counter()
    async with live_target_of(engine, dbos_database=dbos_database, prefect_database=prefect_database) as target:
        if on_ready is not None:
            on_ready(options.total_steps())
        result = await measure_live(target, options, progress)
    return {**result, 'elapsed_s': time.perf_counter() - start}
