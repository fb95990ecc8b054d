"""Smoke tests of `just bench`: the smallest configurations, through the real command line.

The main section on Temporal: every variant ran and recorded the expected number of durable units. The live-events
section on every engine: every delta reached the consumer, and a topic stores bytes. They never assert on timings.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _reference_temporal_import_error() -> str | None:
    # pydantic-ai 2.33's own Temporal integration does not import with temporalio >= 1.34 (the pai2-first cell): the
    # bench's yardstick cannot run there. Asked in a child process, as the bench runs.
    probe = subprocess.run(
        [sys.executable, '-c', 'import pydantic_ai.durable_exec.temporal'], capture_output=True, text=True, timeout=120
    )
    if probe.returncode == 0:
        return None
    raised = [line for line in probe.stderr.splitlines() if re.match(r'[\w.]+(Error|Exception): ', line)]
    return raised[-1][:300] if raised else f'exit {probe.returncode}'


@pytest.mark.timeout(240)
def test_smallest_bench_runs_every_variant(tmp_path: Path) -> None:
    error = _reference_temporal_import_error()
    if error is not None:
        pytest.skip(f"the bench's reference (pydantic-ai's own Temporal integration) does not import here ({error})")
    out = tmp_path / 'bench.json'
    command = [
        sys.executable,
        '-m',
        'benchmarks',
        '--engine=temporal',
        '--only=main',
        '--turns=2',
        '--tools=2',
        '--runs=1',
        '--warmup=0',
        '--concurrency=2',
        '--concurrent-runs=2',
        '--long-turns=2,3',
        '--long-runs=1',
        '--event-runs=1',
        f'--json={out}',
    ]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=110, check=False)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]

    report: dict[str, Any] = json.loads(out.read_text())
    engine = report['engines']['temporal']
    variants = {variant['name']: variant for variant in engine['variants']}
    assert set(variants) == {'ours', 'reference', 'floor', 'plain'}
    for name, variant in variants.items():
        assert variant['errors'] == [], name
        assert len(variant['wall_ms']) == 1, name
        assert variant['runs_per_s'].keys() == {'1', '2'}, name
        # CPU per run of the process, one at a time and per run of the batch in flight.
        assert variant['cpu_ms_per_run'].keys() == {'1', '2'}, name
        assert all(cpu > 0 for cpu in variant['cpu_ms_per_run'].values()), name
        assert variant['units_per_run'] == [variant['expected_units']], name
        for turns, row in variant['long'].items():
            assert row['units'] == row['expected_units'], (name, turns)
    # T=2, K=2: two model requests and the two tool calls of the first turn; T=3, K=1 in the long conversation.
    assert variants['reference']['expected_units'] == 4
    assert variants['ours']['long']['3']['units'] == 5
    assert variants['plain']['units_per_run'] == [0]
    # The same workload with an event stream handler ran for every agent variant (units are compared, not fixed).
    for name in ('ours', 'reference', 'plain'):
        assert variants[name]['events']['units'] is not None, name
    assert variants['reference']['events']['units'] >= 4
    assert variants['ours']['store_bytes'] > 0
    assert engine['headline']['targets'].keys() >= {'ours/reference units <= 1.0', 'ours/floor CPU per run <= 1.1'}
    # Every metric has its ratios to the reference and to the floor, from the same run.
    for ratios in (engine['headline']['ours_vs_reference'], engine['headline']['ours_vs_floor']):
        assert ratios.keys() >= {'wall_median', 'cpu_per_run', 'cpu_per_run_c2', 'runs_per_s_c2', 'store_bytes'}
        assert ratios['cpu_per_run'] is not None
    assert engine['load_before']
    assert engine['load_after']


@pytest.mark.timeout(240)
def test_prefect_bench_runs_on_a_server_backed_by_postgres(tmp_path: Path) -> None:
    out = tmp_path / 'bench.json'
    command = [
        sys.executable,
        '-m',
        'benchmarks',
        '--engine=prefect',
        '--prefect-database=postgres',
        '--only=main',
        '--variant=ours',
        '--variant=floor',
        '--turns=2',
        '--tools=2',
        '--runs=1',
        '--warmup=0',
        '--concurrency=2',
        '--concurrent-runs=2',
        '--long-turns=2',
        '--event-runs=1',
        f'--json={out}',
    ]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=230, check=False)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]

    engine = json.loads(out.read_text())['engines']['prefect']
    assert engine['database'] == 'postgres'
    variants = {variant['name']: variant for variant in engine['variants']}
    assert set(variants) == {'ours', 'floor'}
    for name, variant in variants.items():
        assert variant['errors'] == [], name
        # Task runs are read back from the server, so its database recorded every unit.
        assert variant['units_per_run'] == [variant['expected_units']], name
        assert variant['long']['2']['units'] == variant['long']['2']['expected_units'], name


@pytest.mark.timeout(150)
def test_engine_profiler_profiles_ours_floor_and_plain_per_thread_on_dbos(tmp_path: Path) -> None:
    command = [
        sys.executable,
        '-m',
        'benchmarks.profile_engines',
        '--engine=dbos',
        '--runs=2',
        '--rounds=2',
        '--warmup=1',
        f'--dump={tmp_path}',
    ]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=140, check=False)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    out = completed.stdout
    assert '| metric | ours | floor | plain |' in out
    assert '| runs | 4 | 4 | 4 |' in out
    # The event loop's thread and DBOS's executor threads are told apart, and the own time is split by area.
    assert '| thread CPU ms/run: MainThread |' in out
    assert '| thread CPU ms/run: dbos-executor' in out
    assert '| ours (durable_*) |' in out
    assert '| engine: dbos |' in out
    assert (tmp_path / 'dbos-ours-c1.pstats').is_file()
    assert (tmp_path / 'dbos-ours-c1-MainThread.pstats').is_file()


@pytest.mark.timeout(150)
def test_smallest_live_events_bench_runs_on_every_engine(tmp_path: Path) -> None:
    out = tmp_path / 'bench.json'
    docs = tmp_path / 'benchmarks.md'
    docs.write_text('# Benchmarks\n\n<!-- bench:begin -->\nmain tables\n<!-- bench:end -->\n')
    command = [
        sys.executable,
        '-m',
        'benchmarks',
        '--only=live-events',
        '--live-runs=1',
        '--live-warmup=0',
        '--live-deltas=3',
        f'--json={out}',
    ]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=140, check=False)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert 'Live events' in completed.stdout

    report: dict[str, Any] = json.loads(out.read_text())
    assert report['engines'] == {}
    assert report['live_events'].keys() == {'temporal', 'dbos', 'prefect'}
    if importlib.util.find_spec('temporalio.contrib.workflow_streams') is None:  # the lowest cell's temporalio
        assert 'Workflow Streams' in report['live_events'].pop('temporal')['error']
    for name, live in report['live_events'].items():
        assert live['errors'] == [], name
        assert len(live['latency_ms']) == 3, name
        assert live['missing_deltas'] == 0, name
        assert live['latency_median_ms'] > 0, name
        assert live['load_before'], name
        assert live['load_after'], name
        assert live['extra_bytes_per_run'] > 0, name

    # `--write-docs` on a measuring run first waits (up to 3 minutes) for a quiet machine; from the JSON it does not.
    rewrite = [sys.executable, '-m', 'benchmarks', f'--from-json={out}', f'--write-docs={docs}']
    subprocess.run(rewrite, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    text = docs.read_text()
    # The live section gets its own markers: the main tables stay as they were.
    assert '<!-- bench:begin -->\nmain tables\n<!-- bench:end -->' in text
    assert '## Live events\n\n<!-- bench-live:begin -->\nMeasured ' in text
    for name in ('temporal', 'dbos', 'prefect'):
        assert f'| {name} |' in text


@pytest.mark.timeout(120)
def test_smallest_local_activities_bench_compares_regular_and_local(tmp_path: Path) -> None:
    out = tmp_path / 'bench.json'
    docs = tmp_path / 'benchmarks.md'
    docs.write_text('# Benchmarks\n\n<!-- bench:begin -->\nmain tables\n<!-- bench:end -->\n')
    command = [
        sys.executable,
        '-m',
        'benchmarks',
        '--engine=temporal',
        '--only=local-activities',
        '--turns=2',
        '--tools=2',
        '--local-runs=1',
        '--local-warmup=0',
        f'--json={out}',
    ]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=110, check=False)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]

    report: dict[str, Any] = json.loads(out.read_text())
    local = report['local_activities']
    assert local['errors'] == []
    assert local['units'] == 4
    # The same units: scheduled activities on one side, local-activity markers on the other.
    assert (local['regular']['scheduled_activities'], local['regular']['local_markers']) == (4, 0)
    assert (local['local']['scheduled_activities'], local['local']['local_markers']) == (0, 4)
    assert local['local']['history_bytes'] < local['regular']['history_bytes']
    assert local['wall_ratio'] > 0

    rewrite = [sys.executable, '-m', 'benchmarks', f'--from-json={out}', f'--write-docs={docs}']
    subprocess.run(rewrite, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    text = docs.read_text()
    assert '<!-- bench:begin -->\nmain tables\n<!-- bench:end -->' in text
    assert '## Local activities (Temporal)\n\n<!-- bench-local:begin -->\nMeasured ' in text


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0] != 'Z'


def _run_politely(command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run `command`; past `timeout`, SIGTERM it (it then stops its workers and servers) before failing."""
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            stdout, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        pytest.fail(f'the scale-out bench took more than {timeout:.0f} s:\n{stdout[-3000:]}{stderr[-3000:]}')
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@pytest.mark.timeout(300)
@pytest.mark.parametrize('engine', ['temporal', 'dbos', 'prefect'])
def test_scale_out_bench_completes_every_run_on_two_worker_processes(engine: str, tmp_path: Path) -> None:
    out = tmp_path / 'scale.json'
    # A Prefect flow run is a new process (imports included): fewer of them keep the test short.
    runs = 4 if engine == 'prefect' else 6
    command = [
        sys.executable,
        '-m',
        'benchmarks._scale',
        f'--engine={engine}',
        '--processes=2',
        '--prefect-processes=2',
        f'--runs={runs}',
        f'--prefect-runs={runs}',
        '--warmup=0',
        '--turns=2',
        f'--json={out}',
    ]
    completed = _run_politely(command, timeout=280)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]

    report: dict[str, Any] = json.loads(out.read_text())
    (row,) = report['engines'][engine]
    assert row['errors'] == [], completed.stdout[-3000:] + completed.stderr[-3000:]
    assert (row['processes'], row['runs']) == (2, runs)
    # Every run finished with the agent's real output (`done after 2 turns`), none with another one.
    assert (row['completed'], row['wrong_outputs']) == (runs, 0)
    assert row['runs_per_s'] > 0
    assert row['rss_peak_mb'] > 0
    if engine != 'prefect':  # DBOS records each run's executor, Temporal the identity of its workers
        assert sum(row['runs_per_worker']) == runs, row['runs_per_worker']
    if engine == 'dbos':
        # Both processes took runs from the shared queue: each takes 3 at most at a time (`worker_concurrency`).
        assert all(row['runs_per_worker']), row['runs_per_worker']
    # Both workers were separate processes, and both were stopped by PID before the report.
    assert len(set(row['worker_pids'])) == 2
    assert not any(_alive(pid) for pid in row['worker_pids'])
    assert f'| {engine} | 2 | {runs} |' in completed.stdout
