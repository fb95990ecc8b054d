"""Kill workers at seeded random points on every engine and print what survived.

    uv run python tests-integration/crash.py --runs 30 [--engine dbos] [--seed 7] [--concurrency 3]

Each run starts the crash agent (three model requests, two parallel tool calls, one more tool call) in a worker
process that kills itself with SIGKILL at the chosen side-channel event, then starts a new worker that must finish
the run. The table counts runs killed, runs completed with the uninterrupted output, runs lost, and model requests or
tool calls that ran again although the engine had recorded them before the kill. Exit status 1 if any run was lost or
repeated a recorded call.
"""

from __future__ import annotations

import argparse
import os
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


def main() -> None:
    """Parse the arguments, run the kills, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--runs', type=int, default=10, help='killed runs per engine (default 10)')
    parser.add_argument('--engine', action='append', choices=ENGINES, help='only this engine (repeatable)')
    parser.add_argument('--seed', type=int, default=int(time.time()), help='seed of the kill points')
    parser.add_argument('--concurrency', type=int, default=3, help='runs in flight at once per engine')
    args = parser.parse_args()
    os.environ.setdefault('PREFECT_SERVER_ANALYTICS_ENABLED', 'false')
    os.environ.setdefault('DO_NOT_TRACK', '1')
    print(f'seed {args.seed}', flush=True)
    table = anyio.run(_run, args.engine or list(ENGINES), args.runs, args.seed, args.concurrency)
    healthy = _print_table(table)
    sys.stdout.flush()
    # Skip interpreter teardown: SDK threads can abort it (see ENGINES.md); everything started has been stopped.
    os._exit(0 if healthy else 1)


if __name__ == '__main__':
    main()
