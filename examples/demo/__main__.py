"""`just demo [dbos|temporal|prefect]`: a durable agent is SIGKILLed mid-run, resumes in a new process, and the demo
shows which calls ran fresh and which were replayed from the engine's record.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from examples.demo._engine import EngineDriver
from examples.demo._journal import HOLD_AFTER_ENV, JournalEvent, JournalReader
from examples.demo._report import CallId, Key, Verdict, console, show_recorded, show_verdict
from examples.demo._runner import DemoError, WorkerLauncher, follow, wait_exit
from examples.demo._travel import PROMPT

PHASE_TIMEOUT = 120.0

DESCRIPTION = """\
A durable pydantic-ai agent survives a crash. The demo starts a worker process that runs a travel agent (search
flights, book one, email the receipt: 4 model requests and 3 tool calls), SIGKILLs it right after call N completes,
starts a second worker that resumes the run from the engine's record, and shows which calls were replayed (not
repeated: the card is charged once) and which ran fresh. No server, key or network is needed for the default.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see `--help`)."""
    parser = argparse.ArgumentParser(prog='just demo', description=DESCRIPTION)
    parser.add_argument(
        'engine',
        nargs='?',
        default='dbos',
        choices=('dbos', 'temporal', 'prefect'),
        help='dbos (default: DBOS + embedded SQLite, no server), temporal (starts the Temporal dev server with its '
        'web UI), prefect (starts a local Prefect server)',
    )
    parser.add_argument(
        '--model',
        default=None,
        help='a real model, for example openai:gpt-4o (needs its API key, e.g. OPENAI_API_KEY); '
        'default: a scripted fake model, no key or network needed',
    )
    parser.add_argument(
        '--crash-after',
        type=int,
        default=4,
        metavar='N',
        help='kill the first worker once N calls have completed (default 4: right after book_flight charged the card)',
    )
    parser.add_argument(
        '--latency', type=float, default=0.4, metavar='SECONDS', help='how long each fake call takes (default 0.4)'
    )
    parser.add_argument(
        '--dir', type=Path, default=None, help='keep the demo files (database, logs) here instead of a temp dir'
    )
    parser.add_argument(
        '--database-url', default=None, help='dbos: a PostgreSQL URL to use instead of the embedded SQLite file'
    )
    parser.add_argument(
        '--tools-not-durable',
        action='store_true',
        help='dbos: run tool calls as plain workflow code (as pydantic_ai.durable_exec.dbos does) to watch the crash '
        'repeat them: the card is charged twice',
    )
    parser.add_argument(
        '--keep-server',
        action='store_true',
        help='temporal, prefect: leave the server running at the end, to explore the run in its web UI',
    )
    args = parser.parse_args(argv)
    if args.crash_after < 1:
        parser.error('--crash-after must be at least 1')
    return args


def check_model(name: str | None) -> str | None:
    """The real model to use, or None (the fake one) when it cannot be set up, saying why."""
    if not name:
        return None
    from examples.demo._models import resolve_model

    try:
        resolve_model(name)
    except Exception as error:
        console.print(f'[yellow]Cannot use {name!r} ({error}); using the scripted fake model instead.[/]')
        return None
    return name


def make_driver(args: argparse.Namespace, workdir: Path, workflow_id: str, model: str | None) -> EngineDriver:
    """The engine's side of the demo."""
    model_name = model.split(':', 1)[-1] if model else 'scripted-travel-model'
    if args.engine == 'dbos':
        from examples.demo._dbos_demo import DBOSDriver

        return DBOSDriver(workdir, workflow_id, model, args.database_url, model_name, args.tools_not_durable)
    if args.engine == 'temporal':
        from examples.demo._temporal_demo import TemporalDriver

        return TemporalDriver(workdir, workflow_id, model, args.keep_server, model_name)
    from examples.demo._prefect_demo import PrefectDriver

    return PrefectDriver(workdir, workflow_id, model, args.keep_server, model_name)


def run_demo(driver: EngineDriver, launcher: WorkerLauncher, crash_after: int) -> bool:
    """Start, kill, restart; print what happened. Returns whether no recorded call was repeated."""
    reader = JournalReader(launcher.journal)
    console.print(f'\n[bold]Process 1 starts the run[/] (prompt: {PROMPT!r})')
    # Process 1 holds inside the call after call N (like a slow model request) until the kill lands: exact on any load.
    first = launcher.start(
        'process 1', driver.worker_argv(start=True), {**driver.worker_env(), HOLD_AFTER_ENV: str(crash_after)}
    )
    completed = 0

    def next_call_started(event: JournalEvent) -> bool:
        nonlocal completed
        if event['event'] == 'end':
            completed += 1
        # A call that started after call N has completed: call N is durably recorded by now.
        return event['event'] == 'start' and completed >= crash_after

    interrupted_event = follow(first, reader, until=next_call_started, timeout=PHASE_TIMEOUT)
    if interrupted_event is None:
        finished = any(e['event'] == 'final' for e in reader.events)
        if finished:
            raise DemoError(
                f'The run finished after {completed} calls, so there was nothing left to kill after call {crash_after}: '
                f'use --crash-after {completed - 1} or less.'
            )
        raise DemoError(f'Process 1 (pid {first.pid}) stopped unexpectedly. Its output:\n{first.log_tail()}')
    first.kill()
    console.print(
        f'\n[bold red]💥 SIGKILL process 1 (pid {first.pid})[/] while {interrupted_event["kind"]} '
        f'{interrupted_event["name"]} was running ({completed} calls completed).'
    )

    before_crash = [c for c in driver.recorded_calls() if c.kind != 'other']
    show_recorded(before_crash, driver.record_name)

    console.print('\n[bold]Process 2 starts[/]: it runs no prompt, it recovers the unfinished run from the record.')
    second = launcher.start('process 2', driver.worker_argv(start=False), driver.worker_env())
    last = follow(second, reader, until=lambda e: e['event'] in ('final', 'error'), timeout=PHASE_TIMEOUT)
    code = wait_exit(second, timeout=PHASE_TIMEOUT)
    if last is None or last['event'] == 'error' or code != 0:
        raise DemoError(f'Process 2 (pid {second.pid}) did not finish the run. Its output:\n{second.log_tail()}')

    final = [c for c in driver.recorded_calls() if c.kind != 'other']
    first_events = [e for e in reader.events if e['pid'] == first.pid]
    # Calls (run one after the other) that ended before the call cut off by the kill started: the engine must have
    # recorded them, so process 2 must not run them again. A call still running at the kill must run again.
    completed_calls: list[CallId] = [
        (e['kind'], e['name'], e['call'])
        for e in first_events
        if e['event'] == 'end' and e['t'] <= interrupted_event['t']
    ]
    started: Counter[Key] = Counter((e['kind'], e['name']) for e in first_events if e['event'] == 'start')
    verdict = Verdict(
        before_crash=before_crash,
        final=final,
        completed_in_first=completed_calls,
        ran_in_second=[
            (e['kind'], e['name'], e['call']) for e in reader.events if e['event'] == 'end' and e['pid'] == second.pid
        ],
        interrupted=list((started - Counter((kind, name) for kind, name, _ in completed_calls)).elements()),
    )
    show_verdict(verdict, driver.replayed_label)
    return verdict.ok


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the process exit code."""
    args = parse_args(argv)
    started_at = time.monotonic()
    model = check_model(args.model)
    temporary = args.dir is None
    workdir = Path(tempfile.mkdtemp(prefix='durable-demo-')) if args.dir is None else args.dir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    journal = workdir / 'journal.jsonl'
    journal.unlink(missing_ok=True)
    workflow_id = f'travel-demo-{uuid.uuid4().hex[:8]}'
    driver = make_driver(args, workdir, workflow_id, model)
    launcher = WorkerLauncher(workdir, journal, 0.0 if model else args.latency, [])
    console.rule(f'[bold]durable demo: {driver.title}')
    console.print(f'run id [bold]{workflow_id}[/], model [bold]{model or "scripted fake model"}[/], files in {workdir}')
    ok = False
    try:
        driver.setup()
        link = driver.link()
        if link:
            console.print(f'Watch it in the web UI: [link={link}]{link}[/link]')
        ok = run_demo(driver, launcher, args.crash_after)
        link = driver.link()  # Prefect's names the flow run, which exists only now
        if link:
            console.print(f'\nThe run in the web UI: [link={link}]{link}[/link]')
            if not args.keep_server:
                console.print(
                    '[dim]The server stops when the demo ends, and the link with it: run the demo with '
                    '--keep-server to explore the run in the UI.[/]'
                )
    except DemoError as error:
        console.print(f'\n[bold red]The demo failed:[/] {error}')
    except KeyboardInterrupt:
        console.print('\n[yellow]Interrupted.[/]')
    except Exception as error:  # anything else (a missing server binary, an engine error): say it plainly
        console.print(f'\n[bold red]The demo failed:[/] {type(error).__name__}: {error}')
    finally:
        launcher.stop_all()
        driver.teardown()
        if temporary and not args.keep_server:  # a kept server may hold its database there
            shutil.rmtree(workdir, ignore_errors=True)
    console.print(f'[dim]({time.monotonic() - started_at:.1f} s)[/]')
    return 0 if ok else 1


if __name__ == '__main__':
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Leave without waiting for SDK threads (a known Temporal SDK abort at interpreter exit, see ENGINES.md).
    os._exit(code)
