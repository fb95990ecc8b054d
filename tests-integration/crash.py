"""Kill workers at seeded random points on every engine and print what survived.

    uv run python tests-integration/crash.py --runs 30 [--engine dbos] [--seed 7] [--concurrency 3]
    uv run python tests-integration/crash.py --kills 100 [--engine dbos] [--seed 7] [--span 4.0] [--budget 1800]

With `--kills N`: kill worker processes from outside at random moments (`harness/kill_run.py`), several runs per
worker, sometimes a second kill during recovery, until N kills interrupted work; re-execution is counted from the
engine's own records (DBOS `operation_outputs`, Temporal activity events, Prefect task-run states). One line per
round, then a table. `--seed` and `--span` (both printed) replay the same kill moments.

Without it:

Each run starts the crash agent (three model requests, two parallel tool calls, one more tool call) in a worker
process that kills itself with SIGKILL at the chosen side-channel event, then starts a new worker that must finish
the run. The table counts runs killed, runs completed with the uninterrupted output, runs lost, and model requests or
tool calls that ran again although the engine had recorded them before the kill. Exit status 1 if any run was lost or
repeated a recorded call.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import anyio

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from harness import ENGINES  # noqa: E402
from harness.crash_run import CrashResult, crash_engine, crash_many, kill_points  # noqa: E402
from harness.kill_engines import kill_engine  # noqa: E402
from harness.kill_run import KillRound, Spans, kill_rounds  # noqa: E402


async def _run(
    engines: list[str], runs: int, seed: int, concurrency: int
) -> dict[str, tuple[list[CrashResult], float]]:
    table: dict[str, tuple[list[CrashResult], float]] = {}
    with tempfile.TemporaryDirectory(prefix='durable-crash-') as workdir:
        for engine in engines:
            started = time.monotonic()
            async with crash_engine(engine) as runner:
                results = await crash_many(runner, kill_points(seed, runs), Path(workdir), concurrency)
            table[engine] = (results, time.monotonic() - started)
    return table


def _print_table(table: dict[str, tuple[list[CrashResult], float]]) -> bool:
    from rich.console import Console
    from rich.table import Table

    out = Table(title='Workers killed with SIGKILL at random points')
    for column in ('engine', 'kills', 'completed', 'lost', 'repeated calls', 're-run, not yet recorded', 'seconds'):
        out.add_column(column, justify='left' if column == 'engine' else 'right')
    healthy = True
    for engine, (results, seconds) in table.items():
        lost = [result for result in results if not result.completed]
        repeated = sum(len(result.repeated) for result in results)
        healthy = healthy and not lost and not repeated
        out.add_row(
            engine,
            str(sum(result.killed for result in results)),
            str(sum(result.completed for result in results)),
            str(len(lost)),
            str(repeated),
            str(sum(len(result.rerun) for result in results)),
            f'{seconds:.0f}',
        )
    console = Console()
    console.print(out)
    for results, _ in table.values():
        for result in results:
            if not result.ok:
                console.print(
                    f'{result.engine} kill at {result.kill_at}: killed={result.killed} output={result.output!r} '
                    f'repeated={result.repeated} error={result.error}'
                )
    return healthy


async def _run_kills(
    engines: list[str],
    kills: int,
    seed: int,
    spans: Spans | None,
    concurrency: int,
    budget: float | None,
    keep_failed: Path | None,
) -> dict[str, tuple[list[KillRound], Spans, float]]:
    table: dict[str, tuple[list[KillRound], Spans, float]] = {}
    with tempfile.TemporaryDirectory(prefix='durable-kill-') as workdir:
        for engine in engines:
            started = time.monotonic()
            async with kill_engine(engine) as runner:
                rounds, used_spans = await kill_rounds(
                    runner,
                    Path(workdir),
                    seed=seed,
                    kills=kills,
                    spans=spans,
                    concurrency=concurrency,
                    budget=budget,
                    progress=lambda line: print(line, flush=True),
                )
            table[engine] = (rounds, used_spans, time.monotonic() - started)
            if keep_failed is not None:
                for kill_round in rounds:
                    if not kill_round.ok:
                        name = f'{engine}-{kill_round.plan.index:04d}'
                        shutil.copytree(Path(workdir) / name, keep_failed / name, dirs_exist_ok=True)
    return table


def _print_kill_table(table: dict[str, tuple[list[KillRound], Spans, float]], seed: int) -> bool:
    from rich.console import Console
    from rich.table import Table

    out = Table(title=f'Workers killed with SIGKILL at random moments (seed {seed}, load {_load()})')
    columns = (
        'engine',
        'kills',
        'second kills',
        'runs',
        'lost',
        'units recorded before a kill',
        'recorded units re-executed',
        'repeated (in flight at a kill)',
        'flow runs re-run after a server error',
        'records lost with a killed worker',
        'spans s',
        'seconds',
    )
    for column in columns:
        out.add_column(column, justify='left' if column == 'engine' else 'right')
    healthy = True
    for engine, (rounds, spans, seconds) in table.items():
        lost = sum(len(r.lost) for r in rounds)
        re_executed = sum(len(r.re_executed) for r in rounds)
        broken = [r for r in rounds if r.unmapped or r.error]
        healthy = healthy and not lost and not re_executed and not broken
        out.add_row(
            engine,
            str(sum(r.kills for r in rounds)),
            str(sum(r.kills > 1 for r in rounds)),
            str(sum(len(r.runs) for r in rounds)),
            str(lost),
            str(sum(r.recorded_before_kill for r in rounds)),
            str(re_executed),
            str(sum(len(r.repeated) for r in rounds)),
            str(sum(r.server_reruns for r in rounds)),
            str(sum(len(r.records_lost) for r in rounds)),
            str(spans),
            f'{seconds:.0f}',
        )
    console = Console(width=160)
    console.print(out)
    for rounds, _, _ in table.values():
        for kill_round in rounds:
            if not kill_round.ok:
                console.print(kill_round.describe())
    return healthy


def _load() -> str:
    return ' '.join(f'{value:.1f}' for value in os.getloadavg())


def main() -> None:
    """Parse the arguments, run the kills, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--runs', type=int, default=10, help='killed runs per engine (default 10)')
    parser.add_argument('--engine', action='append', choices=ENGINES, help='only this engine (repeatable)')
    parser.add_argument('--seed', type=int, default=int(time.time()), help='seed of the kill points')
    parser.add_argument(
        '--concurrency', type=int, help='runs (with --kills: rounds of several runs) in flight at once (3; 2)'
    )
    parser.add_argument('--kills', type=int, help='kill at random moments until this many kills interrupted work')
    parser.add_argument('--span', help='with --kills: STARTUP,WORK seconds the kill moments are drawn over')
    parser.add_argument('--budget', type=float, help='with --kills: start no round after this many seconds')
    parser.add_argument('--keep-failed', type=Path, help="with --kills: copy failed rounds' files (worker logs) here")
    args = parser.parse_args()
    os.environ.setdefault('PREFECT_SERVER_ANALYTICS_ENABLED', 'false')
    os.environ.setdefault('DO_NOT_TRACK', '1')
    print(f'seed {args.seed}', flush=True)
    if args.kills is not None:
        print(f'load average {_load()}', flush=True)
        kill_table = anyio.run(
            _run_kills,
            args.engine or list(ENGINES),
            args.kills,
            args.seed,
            Spans(*map(float, args.span.split(','))) if args.span else None,
            args.concurrency or 2,
            args.budget,
            args.keep_failed,
        )
        healthy = _print_kill_table(kill_table, args.seed)
        sys.stdout.flush()
        os._exit(0 if healthy else 1)
    table = anyio.run(_run, args.engine or list(ENGINES), args.runs, args.seed, args.concurrency or 3)
    healthy = _print_table(table)
    sys.stdout.flush()
    # Skip interpreter teardown: SDK threads can abort it (see ENGINES.md); everything started has been stopped.
    os._exit(0 if healthy else 1)


if __name__ == '__main__':
    main()
