"""Smoke test of `just bench`: the smallest configuration on Temporal, through the real command line.

It checks that every variant ran and recorded the expected number of durable units; it never asserts on timings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(120)
def test_smallest_bench_runs_every_variant(tmp_path: Path) -> None:
    out = tmp_path / 'bench.json'
    command = [
        sys.executable,
        '-m',
        'benchmarks',
        '--engine=temporal',
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
    assert engine['headline']['targets'].keys() >= {'ours/reference units <= 1.0'}
