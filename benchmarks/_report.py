"""Headline ratios, target checks, the terminal table and the markdown section of `docs/benchmarks.md`."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ._stats import ratio

DOCS_BEGIN = '<!-- bench:begin -->'
DOCS_END = '<!-- bench:end -->'
LIVE_DOCS_BEGIN = '<!-- bench-live:begin -->'
LIVE_DOCS_END = '<!-- bench-live:end -->'
LOCAL_DOCS_BEGIN = '<!-- bench-local:begin -->'
LOCAL_DOCS_END = '<!-- bench-local:end -->'
LOCAL_WALL_TARGET = 0.4
"""Issue 17's target: the run on local activities at most this share of its wall time on regular ones."""

# On DBOS the reference as shipped runs tools outside steps; durable units and wall time are judged against the
# reference with its tools decorated as steps (its durable equivalent).
_BASELINE = {'dbos': 'reference+steps'}


def _variant(engine: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((variant for variant in engine['variants'] if variant['name'] == name), None)


def _get(variant: dict[str, Any] | None, key: str) -> float | None:
    if variant is None:
        return None
    value = variant.get(key)
    return float(value) if isinstance(value, int | float) else None


def _event(variant: dict[str, Any] | None, key: str) -> float | None:
    if variant is None:
        return None
    value = variant.get('events', {}).get(key)
    return float(value) if isinstance(value, int | float) else None


def _throughput(variant: dict[str, Any] | None, concurrency: int) -> float | None:
    if variant is None:
        return None
    value = variant['runs_per_s'].get(str(concurrency))
    return float(value) if value is not None else None


def _cpu(variant: dict[str, Any] | None, concurrency: int = 1) -> float | None:
    """CPU ms of the measuring process per run, with `concurrency` runs in flight (1: the sequential runs)."""
    if variant is None:
        return None
    value = variant.get('cpu_ms_per_run', {}).get(str(concurrency))
    return float(value) if value is not None else None


def levels(engine: dict[str, Any]) -> list[int]:
    """The in-flight levels of the engine's throughput measurements, besides 1 (older reports: one int)."""
    concurrency = engine['concurrency']
    return [concurrency] if isinstance(concurrency, int) else list(concurrency)


Getter = Callable[[dict[str, Any] | None], float | None]
"""Reads one metric of a variant's results."""


def _metrics(engine: dict[str, Any]) -> list[tuple[str, str, Getter]]:
    """Key, label and getter of every metric compared between variants, in the order of issue 17's table."""
    in_flight = levels(engine)
    return [
        ('wall_median', 'wall median ms, one run at a time', partial(_get, key='median_ms')),
        ('cpu_per_run', 'CPU ms per run, one at a time', partial(_cpu, concurrency=1)),
        *(
            (f'cpu_per_run_c{level}', f'CPU ms per run, {level} in flight', partial(_cpu, concurrency=level))
            for level in in_flight
        ),
        ('runs_per_s_c1', 'runs/s, one at a time', partial(_throughput, concurrency=1)),
        *(
            (f'runs_per_s_c{level}', f'runs/s, {level} in flight', partial(_throughput, concurrency=level))
            for level in in_flight
        ),
        ('units', 'durable units per run', partial(_get, key='units')),
        ('store_bytes', f'{engine["store_metric"] or "stored bytes"} per run', partial(_get, key='store_bytes')),
    ]


FLOOR_TARGETS: dict[str, dict[str, float]] = {
    'temporal': {'wall_median': 1.3, 'cpu_per_run': 1.1, 'runs_per_s': 0.9},
    'dbos': {'wall_median': 1.1, 'runs_per_s_max': 0.9},
    'prefect': {'wall_median': 1.05},
}
"""Issue 17's targets against the floor: wall and CPU at most, runs/s (every level, or the highest) at least."""


def _floor_targets(engine_name: str, engine: dict[str, Any], vs_floor: dict[str, float | None]) -> dict[str, Any]:
    limits = FLOOR_TARGETS.get(engine_name, {'wall_median': 1.3})
    targets: dict[str, bool | None] = {}
    if 'wall_median' in limits:
        targets[f'ours/floor wall <= {limits["wall_median"]:g}'] = _at_most(
            vs_floor['wall_median'], limits['wall_median']
        )
    if 'cpu_per_run' in limits:
        targets[f'ours/floor CPU per run <= {limits["cpu_per_run"]:g}'] = _at_most(
            vs_floor['cpu_per_run'], limits['cpu_per_run']
        )
    floor_levels = (
        levels(engine) if 'runs_per_s' in limits else levels(engine)[-1:] if 'runs_per_s_max' in limits else []
    )
    least = limits.get('runs_per_s', limits.get('runs_per_s_max', 0.0))
    for level in floor_levels:
        value = vs_floor[f'runs_per_s_c{level}']
        targets[f'ours/floor runs/s c{level} >= {least:g}'] = None if value is None else value >= least
    return targets


def headline(engine_name: str, engine: dict[str, Any]) -> dict[str, Any]:
    """Ratios ours/reference and ours/floor of every metric for one engine, and whether each target is met.

    Every ratio is ours' value over the other's: below 1 is cheaper for times, CPU, units and bytes, above 1 is
    faster for runs/s.
    """
    ours = _variant(engine, 'ours')
    baseline_name = _BASELINE.get(engine_name, 'reference')
    baseline = _variant(engine, baseline_name) or _variant(engine, 'reference')
    shipped = _variant(engine, 'reference')
    floor = _variant(engine, 'floor')
    metrics = _metrics(engine)
    result: dict[str, Any] = {
        'baseline': baseline['name'] if baseline else None,
        'ours_vs_reference': {key: ratio(get(ours), get(baseline)) for key, _, get in metrics},
        'ours_vs_reference_with_events': {
            'wall_median': ratio(_event(ours, 'median_ms'), _event(baseline, 'median_ms')),
            'units': ratio(_event(ours, 'units'), _event(baseline, 'units')),
        },
        'ours_vs_shipped_reference': {
            'wall_median': ratio(_get(ours, 'median_ms'), _get(shipped, 'median_ms')),
            'units': ratio(_get(ours, 'units'), _get(shipped, 'units')),
        },
        'ours_vs_floor': {key: ratio(get(ours), get(floor)) for key, _, get in metrics},
        'store_growth_exponent': {
            name: variant['store_growth_exponent'] for variant in engine['variants'] if (name := variant['name'])
        },
    }
    vs_ref = result['ours_vs_reference']
    growth = result['store_growth_exponent']
    targets: dict[str, bool | None] = {
        'ours/reference wall <= 1.0': _at_most(vs_ref['wall_median'], 1.0),
        'ours/reference units <= 1.0': _at_most(vs_ref['units'], 1.0),
    }
    # Units the reference spends on events (beyond the run without a handler) are units it does not need.
    if (_event(baseline, 'units') or 0) > (_get(baseline, 'units') or 0):
        targets['ours/reference units with event handler <= 0.8'] = _at_most(
            result['ours_vs_reference_with_events']['units'], 0.8
        )
    else:
        targets['ours/reference units with event handler <= 1.0'] = _at_most(
            result['ours_vs_reference_with_events']['units'], 1.0
        )
    if engine_name == 'temporal':
        ours_growth, reference_growth = growth.get('ours'), growth.get('reference')
        targets['history growth exponent ours <= reference'] = (
            None if ours_growth is None or reference_growth is None else ours_growth <= reference_growth + 0.05
        )
    targets.update(_floor_targets(engine_name, engine, result['ours_vs_floor']))
    result['targets'] = targets
    return result


def _at_most(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '–'
    return f'{value:,.{digits}f}'


def _export(value: float | None) -> str:
    return '' if value is None else f' (JSON {_fmt_bytes(value)})'


def _count(number: int, noun: str) -> str:
    return f'{number} {noun}' + ('' if number == 1 else 's')


def _fmt_bytes(value: float | None) -> str:
    if value is None:
        return '–'
    if value >= 1024 * 1024:
        return f'{value / 1024 / 1024:.2f} MB'
    return f'{value / 1024:.1f} KB'


def comparison_rows(engine_name: str, engine: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of one engine's comparison: each metric for the reference, ours and the floor, and the ratios.

    The shape of issue 17's table, from one interleaved run.
    """
    head = engine['headline']
    baseline_name = head['baseline'] or 'reference'
    ours, baseline, floor = (_variant(engine, name) for name in ('ours', baseline_name, 'floor'))
    header = ['metric', baseline_name, 'ours', 'floor', f'ours/{baseline_name}', 'ours/floor']
    rows: list[list[str]] = []
    for key, label, get in _metrics(engine):
        show = _fmt_bytes if key == 'store_bytes' else _fmt
        rows.append(
            [
                label,
                show(get(baseline)),
                show(get(ours)),
                show(get(floor)),
                _fmt(head['ours_vs_reference'].get(key), 2),
                _fmt(head['ours_vs_floor'].get(key), 2),
            ]
        )
    return header, rows


def variant_rows(engine: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of one engine's per-variant table (main workload)."""
    in_flight = levels(engine)
    header = [
        'variant',
        'median ms',
        'p90 ms',
        'CPU ms/run',
        'runs/s c1',
        *(f'runs/s c{level}' for level in in_flight),
        'units/run (expected)',
        f'{engine["store_metric"] or "stored bytes"}/run',
        'with event handler: ms, units',
    ]
    rows: list[list[str]] = []
    for variant in engine['variants']:
        units = variant['units']
        rows.append(
            [
                variant['name'] + (' (errors)' if variant['errors'] else ''),
                _fmt(variant['median_ms']),
                _fmt(variant['p90_ms']),
                _fmt(_cpu(variant, 1)),
                _fmt(_throughput(variant, 1)),
                *(_fmt(_throughput(variant, level)) for level in in_flight),
                f'{units if units is not None else "–"} ({variant["expected_units"]})'
                + ('' if variant['units_consistent'] else ' varies'),
                _fmt_bytes(variant['store_bytes']) + _export(variant.get('export_bytes')),
                f'{_fmt(_event(variant, "median_ms"))}, {_fmt(_event(variant, "units"), 0)}'
                if variant.get('events')
                else '–',
            ]
        )
    return header, rows


def long_rows(engine: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of one engine's long-conversation table: wall time, units and bytes per turn count."""
    long_turns = sorted({int(turns) for variant in engine['variants'] for turns in variant['long']})
    measures_bytes = engine['store_metric'] is not None
    header = ['variant', *(f'T={turns}' for turns in long_turns)]
    header.append('bytes growth exp.' if measures_bytes else 'time growth exp.')
    rows: list[list[str]] = []
    for variant in engine['variants']:
        if variant['name'] == 'plain':
            continue
        cells: list[str] = []
        for turns in long_turns:
            row = variant['long'].get(str(turns), {})
            cell = f'{_fmt(row.get("median_ms"), 0)} ms, {row.get("units", "–")} u'
            if measures_bytes:
                cell += f', {_fmt_bytes(row.get("store_bytes"))}{_export(row.get("export_bytes"))}'
            cells.append(cell)
        exponent = variant['store_growth_exponent'] if measures_bytes else variant['wall_growth_exponent']
        rows.append([variant['name'], *cells, _fmt(exponent, 2)])
    return header, rows


def _per_level(ratios: dict[str, float | None], engine: dict[str, Any]) -> str:
    return ' / '.join(_fmt(ratios.get(f'runs_per_s_c{level}'), 2) for level in levels(engine))


def headline_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the headline table (one row per engine)."""
    header = [
        'engine',
        'ours/ref wall',
        'ours/ref CPU per run',
        'ours/ref runs/s, many in flight',
        'ours/ref units, event handler',
        'ours/floor wall',
        'ours/floor CPU per run',
        'ours/floor runs/s, many in flight',
        'ours/floor units',
        'bytes growth ours vs ref',
        'load (1 min) before / after',
        'targets missed',
    ]
    rows: list[list[str]] = []
    for name, engine in report['engines'].items():
        head = engine.get('headline')
        if head is None:
            rows.append([name, *(['–'] * (len(header) - 2)), engine.get('error', 'not run')])
            continue
        vs_ref, vs_floor = head['ours_vs_reference'], head['ours_vs_floor']
        growth = head['store_growth_exponent']
        missed = [target for target, met in head['targets'].items() if met is False]
        unknown = [target for target, met in head['targets'].items() if met is None]
        baseline = '' if head['baseline'] == 'reference' else f' (vs {head["baseline"]})'
        in_flight = '/'.join(f'c{level}' for level in levels(engine))
        load = (
            f'{_one_minute(engine["load_before"])} / {_one_minute(engine["load_after"])}'
            if 'load_before' in engine
            else '–'
        )
        rows.append(
            [
                name + baseline,
                _fmt(vs_ref['wall_median'], 2),
                _fmt(vs_ref.get('cpu_per_run'), 2),
                f'{_per_level(vs_ref, engine)} ({in_flight})',
                _fmt(head['ours_vs_reference_with_events']['units'], 2),
                _fmt(vs_floor['wall_median'], 2),
                _fmt(vs_floor.get('cpu_per_run'), 2),
                f'{_per_level(vs_floor, engine)} ({in_flight})',
                _fmt(vs_floor['units'], 2),
                f'{_fmt(growth.get("ours"), 2)} vs {_fmt(growth.get("reference"), 2)}',
                load,
                ', '.join(missed) or ('none' if not unknown else f'none (not measured: {len(unknown)})'),
            ]
        )
    return header, rows


def _print_table(console: Console, title: str, table_rows: tuple[list[str], list[list[str]]], left: str) -> None:
    """Print one table; the column named `left` is left-aligned, the others (numbers) right-aligned."""
    header, rows = table_rows
    table = Table(title=title)
    for column in header:
        table.add_column(column, justify='left' if column == left else 'right')
    for row in rows:
        table.add_row(*row)
    console.print(table)


def print_report(report: dict[str, Any], console: Console) -> None:
    """Print one table per engine, then the headline table; then the live-events table if that section ran."""
    if report['engines']:
        _print_main(report, console)
    if report.get('live_events'):
        _print_table(console, live_title(report), live_rows(report), left='engine')
        for note in live_notes(report):
            console.print(f'- {note}', highlight=False)
        for name, live in report['live_events'].items():
            for error in live.get('errors', [])[:3]:
                console.print(f'[red]{name}/live events: {error}[/red]')
    local = report.get('local_activities')
    if local:
        _print_table(console, local_title(local), local_rows(local), left='activities')
        console.print(f'- {local_verdict(local)}', highlight=False)
        for error in local.get('errors', [])[:3]:
            console.print(f'[red]local activities: {error}[/red]')


def local_title(local: dict[str, Any]) -> str:
    """The title of the local-activities table: the workload."""
    if 'workload' not in local:
        return 'Temporal: regular vs local activities'
    return (
        f'Temporal: regular vs local activities, {local["workload"]} ({local["units"]} units), '
        f'{local["runs"]} runs of each interleaved, one at a time'
    )


def local_rows(local: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the local-activities table (regular, local)."""
    header = [
        'activities',
        'wall median ms',
        'history bytes',
        'history events',
        'scheduled activities',
        'local markers',
        'load (1 min) before / after',
    ]
    if 'regular' not in local:
        return header, [['–', *(['–'] * (len(header) - 2)), local.get('error', 'not run')]]
    load = f'{_one_minute(local["load_before"])} / {_one_minute(local["load_after"])}'
    rows = [
        [
            kind,
            _fmt(local[kind]['wall_median_ms']),
            _fmt_bytes(local[kind]['history_bytes']),
            _fmt(local[kind]['history_events']),
            _fmt(local[kind]['scheduled_activities']),
            _fmt(local[kind]['local_markers']),
            load,
        ]
        for kind in ('regular', 'local')
    ]
    return header, rows


def local_verdict(local: dict[str, Any]) -> str:
    """The wall and bytes ratios, and whether the wall target is met."""
    wall = local.get('wall_ratio')
    if wall is None:
        return 'no ratio: a side has no timed run'
    regular_bytes, local_bytes = local['regular']['history_bytes'], local['local']['history_bytes']
    met = 'met' if wall <= LOCAL_WALL_TARGET else 'missed'
    return (
        f'local / regular: wall {wall:.2f}x (target <= {LOCAL_WALL_TARGET}x: {met}), history bytes '
        f'{local_bytes / regular_bytes:.2f}x'
    )


def _machine_line(machine: dict[str, Any]) -> str:
    return (
        f'- Machine: {machine["cpu"]}, {machine["cores"]} cores, {machine["memory_gb"]:.1f} GB RAM; Python '
        f'{machine["python"]}; {", ".join(f"{name} {version}" for name, version in machine["versions"].items())}.'
    )


def _preamble(report: dict[str, Any], measured: str, bullets: list[str]) -> list[str]:
    """The head every docs section shares: when and how it was measured, the load, the machine, the noise warning."""
    parts = [
        f'Measured {report["started"]} with `{report["command"]}`{measured}; load average (1/5/15 min) before: '
        f'{report["load_before"]}, after: {report["load_after"]}.',
        '',
        _machine_line(report['machine']),
        *bullets,
        '',
    ]
    if report.get('noisy'):
        parts += [
            '!!! warning "Noisy numbers"',
            '    These numbers were taken while other jobs were running on the machine (see the load average). '
            'Re-take them on a quiet machine before quoting them.',
            '',
        ]
    return parts


def _errors(errors: list[str]) -> list[str]:
    return ['Errors:', '', *(f'- {error}' for error in errors[:3]), ''] if errors else []


def local_markdown(report: dict[str, Any]) -> str:
    """The local-activities section of `docs/benchmarks.md` (without the markers)."""
    local = report['local_activities']
    parts = _preamble(
        report,
        '',
        [
            f'- Workload: {local_title(local)}. `durable_temporal.TemporalAgent` with the default activities and with '
            '`local_activities=True`, one worker for both, same client and converter as the main section.',
            '- History bytes: the protobuf size of the workflow history (the median run).',
        ],
    )
    parts += [_markdown_table(*local_rows(local)), '', f'- {local_verdict(local)}', '']
    return '\n'.join(parts + _errors(local.get('errors', [])))


def live_title(report: dict[str, Any]) -> str:
    """The title of the live-events table: the workload."""
    options = report['live_options']
    return (
        f'Live events: 1 tool call then {options["deltas"]} text deltas {options["pause_ms"]:g} ms apart, '
        f'{_count(options["runs"], "run")} with a topic and a consumer interleaved with {options["runs"]} without'
    )


def live_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the live-events table (one row per engine)."""
    header = [
        'engine',
        'delta latency median ms',
        'p90 ms',
        'max ms',
        'deltas missed',
        'wall ms without / with topic',
        'stored bytes/run without / with topic',
        'extra bytes/run',
        'load (1 min) before / after',
    ]
    rows: list[list[str]] = []
    for name, live in report['live_events'].items():
        if 'latency_ms' not in live:
            rows.append([name, *(['–'] * (len(header) - 2)), live.get('error', 'not run')])
            continue
        with_bytes, without_bytes = live['stored_bytes_with_topic'], live['stored_bytes_without_topic']
        rows.append(
            [
                name + (' (errors)' if live['errors'] else ''),
                _fmt(live['latency_median_ms']),
                _fmt(live['latency_p90_ms']),
                _fmt(live['latency_max_ms']),
                f'{live["missing_deltas"]} of {live["deltas"] * live["runs"]}',
                f'{_fmt(live["wall_ms_without_topic"])} / {_fmt(live["wall_ms_with_topic"])}',
                f'{_fmt_bytes(_median(without_bytes))} / {_fmt_bytes(_median(with_bytes))} ({live["store_metric"]})',
                _fmt_bytes(live['extra_bytes_per_run']),
                f'{_one_minute(live["load_before"])} / {_one_minute(live["load_after"])}',
            ]
        )
    return header, rows


def live_notes(report: dict[str, Any]) -> list[str]:
    """Per engine that tells them apart, where the bytes of a run with a topic went."""
    found: list[str] = []
    for name, live in report['live_events'].items():
        detail: dict[str, float] = live.get('stored_detail_with_topic') or {}
        if detail:
            parts = ', '.join(f'{_fmt_bytes(size)} {kind}' for kind, size in detail.items())
            found.append(f'{name}: of the bytes a run with a topic stores, {parts} (medians per run).')
    return found


def _one_minute(load: str) -> str:
    return load.split(' / ')[0]


def _median(values: list[int]) -> float | None:
    return statistics.median(values) if values else None


def _print_main(report: dict[str, Any], console: Console) -> None:
    for name, engine in report['engines'].items():
        if 'variants' not in engine:
            console.print(f'[red]{name}: {engine.get("error", "not run")}[/red]')
            continue
        workload = f'T={report["options"]["turns"]} K={report["options"]["tools"]}'
        if engine.get('headline'):
            _print_table(
                console, f'{name}: {workload}, ours against the others', comparison_rows(name, engine), 'metric'
            )
        _print_table(console, f'{name}: {workload}, every variant', variant_rows(engine), 'variant')
        _print_table(
            console, f'{name}: long conversation (ms, durable units, bytes per run)', long_rows(engine), 'variant'
        )
        for variant in engine['variants']:
            for error in variant['errors'][:3]:
                console.print(f'[red]{name}/{variant["name"]}: {error}[/red]')
    _print_table(console, 'Headline: ours/other of each metric', headline_rows(report), 'engine')
    for name, engine in report['engines'].items():
        for note in notes(name, engine):
            console.print(f'- {note}', highlight=False)


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join('---' for _ in header) + '|']
    lines += ['| ' + ' | '.join(cell.replace('|', '\\|') for cell in row) + ' |' for row in rows]
    return '\n'.join(lines)


def notes(engine_name: str, engine: dict[str, Any]) -> list[str]:
    """One sentence per missed target (and per quadratic history), with the numbers behind it and the likely cause."""
    head = engine.get('headline')
    if head is None:
        return []
    ours = _variant(engine, 'ours')
    baseline = _variant(engine, head['baseline'] or 'reference')
    if ours is None or baseline is None:
        return [f'{engine_name}: `ours` did not run, so no ratio against it could be taken.']
    base = f'`{baseline["name"]}`'
    found: list[str] = []
    targets = head['targets']
    if targets.get('ours/reference wall <= 1.0') is False:
        found.append(
            f'{engine_name}: ours takes {_fmt(head["ours_vs_reference"]["wall_median"], 2)}x the median wall time of '
            f'{base} ({_fmt(_get(ours, "median_ms"))} ms vs {_fmt(_get(baseline, "median_ms"))} ms, '
            f'p90 {_fmt(_get(ours, "p90_ms"))} vs {_fmt(_get(baseline, "p90_ms"))} ms) with the same number of '
            'durable units'
            + (
                f"; ours' median is below {base}'s p90, so at this load the gap is within the run-to-run noise."
                if (_get(ours, 'median_ms') or 0) < (_get(baseline, 'p90_ms') or 0)
                else ': the difference is per-unit work in our wrapper (payload building and (de)serialization).'
            )
        )
    if targets.get('ours/reference units <= 1.0') is False:
        found.append(
            f'{engine_name}: ours records {_fmt(_get(ours, "units"), 0)} durable units per run against '
            f'{_fmt(_get(baseline, "units"), 0)} for {base}.'
        )
    for target in ('ours/reference units with event handler <= 0.8', 'ours/reference units with event handler <= 1.0'):
        if targets.get(target) is False:
            extra = (_event(baseline, 'units') or 0) - (_get(baseline, 'units') or 0)
            found.append(
                f'{engine_name}: with an event stream handler {base} records {_fmt(_event(baseline, "units"), 0)} '
                f'units per run ({_fmt(extra, 0)} of them only to hand events to the handler, one per event) and ours '
                f'{_fmt(_event(ours, "units"), 0)}.'
            )
    wall_target = next((target for target in targets if target.startswith('ours/floor wall')), None)
    if wall_target is not None and targets[wall_target] is False:
        sentence = (
            f"{engine_name}: ours takes {_fmt(head['ours_vs_floor']['wall_median'], 2)}x the floor's wall time with "
            f'{_fmt(head["ours_vs_floor"]["units"], 2)}x its units'
        )
        floor_ms, plain_ms = _get(_variant(engine, 'floor'), 'median_ms'), _get(_variant(engine, 'plain'), 'median_ms')
        ours_ms, units = _get(ours, 'median_ms'), _get(ours, 'units')
        if floor_ms and plain_ms and ours_ms and units:
            wrapper_ms = ours_ms - floor_ms - plain_ms
            sentence += (
                f': the floor runs no agent, and the plain agent alone (no engine) takes {_fmt(plain_ms)} ms per run, '
                f'{_fmt(100 * plain_ms / floor_ms, 0)}% of the floor. Floor plus plain agent is '
                f'{_fmt(floor_ms + plain_ms)} ms, so ours is {_fmt(ours_ms / (floor_ms + plain_ms), 2)}x that. The '
                f'remaining {_fmt(wrapper_ms)} ms per run ({_fmt(1000 * wrapper_ms / units, 0)} us per unit) is what '
                "real units cost beyond the floor's no-op ones: (de)serializing each unit's messages and results, and "
                "the engine's bookkeeping around pydantic-ai's concurrent tool tasks"
            )
        else:
            sentence += (
                ": the floor moves only each turn's new data, ours runs the pydantic-ai agent graph and serializes "
                'messages and run context into every unit'
            )
        if head['ours_vs_floor']['store_bytes'] is not None:
            sentence += f"; it stores {_fmt(head['ours_vs_floor']['store_bytes'], 1)}x the floor's bytes per run"
        found.append(sentence + _profile_pointer(engine_name) + '.')
    floor = _variant(engine, 'floor')
    cpu_target = next((target for target in targets if target.startswith('ours/floor CPU')), None)
    if cpu_target is not None and targets[cpu_target] is False:
        ours_cpu, floor_cpu, units = _cpu(ours), _cpu(floor), _get(ours, 'units')
        if ours_cpu is not None and floor_cpu is not None and units:
            found.append(
                f"{engine_name}: ours spends {_fmt(ours_cpu)} ms of CPU per run against the floor's {_fmt(floor_cpu)} ms "
                f'({_fmt(1000 * (ours_cpu - floor_cpu) / units, 0)} us per unit more): the pydantic-ai agent graph, '
                'the run context and messages (de)serialized into and out of every unit; where it goes: '
                '"Where the CPU goes" below.'
            )
    slow = [target for target in targets if target.startswith('ours/floor runs/s') and targets[target] is False]
    if slow:
        found.append(
            f'{engine_name}: ours/floor runs/s '
            + ', '.join(
                f'{_fmt(head["ours_vs_floor"][key], 2)} at {key.removeprefix("runs_per_s_c")} in flight'
                for key in (f'runs_per_s_{target.split()[2]}' for target in slow)
            )
            + ': with many runs in flight one worker process is CPU-bound, so the runs/s follow the CPU per run'
            + _profile_pointer(engine_name)
            + '.'
        )
    ours_growth = head['store_growth_exponent'].get('ours')
    floor_growth = head['store_growth_exponent'].get('floor')
    if ours_growth is not None and ours_growth > 1.3:
        found.append(
            f'{engine_name}: the bytes ours stores per run grow as T^{_fmt(ours_growth, 2)} '
            f'(reference T^{_fmt(head["store_growth_exponent"].get("reference"), 2)}, floor '
            f'T^{_fmt(floor_growth, 2)}): the whole message history still crosses into every model unit, so a long '
            'conversation grows quadratically.'
        )
    return found


def _profile_pointer(engine_name: str) -> str:
    # The profile sections of docs/benchmarks.md (`benchmarks.profile_engines`) say where the CPU of DBOS and Prefect
    # goes; Temporal's sentence already names its own section.
    for engine, title in (('dbos', 'DBOS'), ('prefect', 'Prefect')):
        if engine_name.startswith(engine):
            return f'; the profile: "Where the CPU goes ({title})" below'
    return ''


def markdown(report: dict[str, Any]) -> str:
    """The numbers section of `docs/benchmarks.md` (without the markers)."""
    options = report['options']
    concurrency = '; '.join(
        f'{name}: {", ".join(str(level) for level in levels(engine))}'
        for name, engine in report['engines'].items()
        if 'concurrency' in engine
    )
    parts = _preamble(
        report,
        f' ({report["elapsed_s"]:.0f} s in all)',
        [
            f'- Workload: T={options["turns"]} model turns, K={options["tools"]} parallel tool calls per turn, '
            f'{options["result_bytes"]} B per tool result; {options["runs"]} timed runs per variant after '
            f'{_count(options["warmup"], "warm-up run")}, interleaved round-robin; '
            f'{_count(options["event_runs"], "run")} with an event stream handler; throughput with that many runs in '
            f'flight at once on one worker ({concurrency}; as many runs as in flight, one batch per variant, the '
            'order of the variants flipped from one level to the next), besides the sequential runs; long '
            f'conversation T={options["long_turns"]} with one {options["long_result_bytes"]} B tool result per turn '
            f'({_count(options["long_runs"], "run")} each).',
            '- CPU per run: the CPU time (`time.process_time()`, every thread) of the process that runs the workers '
            'and clients, over the sequential runs (one at a time) or over a whole batch divided by its runs; the '
            "engine's server is another process and is not counted (Temporal's dev server, Prefect's ephemeral "
            "server; DBOS has none, its database work is in the process). Less sensitive to other jobs' load than "
            'the wall time.',
            '- Durable units: activities scheduled in the workflow history (Temporal), rows recorded in '
            '`operation_outputs` (DBOS steps), task runs of the flow run (Prefect). Stored bytes: the protobuf size of '
            'the history events, what the Temporal server keeps and its history limits count (JSON: the history '
            "exported with `WorkflowHistory.to_json()`, the form the reference's published sizes use); every value "
            "of the DBOS system-database rows keyed by the run's workflow id; the files of the results the Prefect "
            'tasks persisted.',
        ],
    )
    parts += ['### Headline', '', _markdown_table(*headline_rows(report)), '']
    parts += [
        'Every ratio is ours over the other: below 1.0 ours is cheaper in wall time, CPU, units and bytes; above 1.0 '
        'ours makes more runs per second.',
        '',
    ]
    for name, engine in report['engines'].items():
        head = engine.get('headline')
        if head and head['baseline'] not in (None, 'reference'):
            shipped = head['ours_vs_shipped_reference']
            parts += [
                f'{name}: ratios are taken against `{head["baseline"]}`, the durable equivalent of the reference. '
                f'Against the reference as shipped (its tool calls are not steps, so a crash repeats them) ours takes '
                f'{_fmt(shipped["wall_median"], 2)}x its wall time and {_fmt(shipped["units"], 2)}x its durable units.',
                '',
            ]
    all_notes = [note for name, engine in report['engines'].items() for note in notes(name, engine)]
    if all_notes:
        parts += ['Where a target is missed, and why:', '', *(f'- {note}' for note in all_notes), '']
    for name, engine in report['engines'].items():
        if 'variants' not in engine:
            parts += [f'### {name}', '', f'Not run: {engine.get("error", "unknown error")}', '']
            continue
        parts += [f'### {name}', '']
        if 'load_before' in engine:
            parts += [f'Load average while measured: before {engine["load_before"]}, after {engine["load_after"]}.', '']
        if engine.get('database'):
            store = {'sqlite': 'SQLite', 'postgres': 'PostgreSQL (embedded)'}.get(
                engine['database'], engine['database']
            )
            owner = 'system database' if name == 'dbos' else "server's database"
            parts += [f'The {owner}: {store} (`--{name}-database {engine["database"]}`).', '']
        if name == 'temporal' and 'workflow_threads' in engine:
            threads = engine['workflow_threads']
            parts += [
                f'Each worker runs workflow activations on {threads} threads (`--workflow-threads {threads}`), the same '
                'for every variant.'
                if threads
                else "Each worker runs workflow activations on the SDK's default thread pool (up to 500 at once).",
                '',
            ]
        parts += [f'- `{variant["name"]}`: {variant["description"]}' for variant in engine['variants']]
        if engine.get('headline'):
            parts += ['', _markdown_table(*comparison_rows(name, engine))]
        parts += ['', _markdown_table(*variant_rows(engine)), '']
        parts += ['Long conversation (median ms, durable units, bytes per run):', '']
        parts += [_markdown_table(*long_rows(engine)), '']
        parts += _errors(
            [f'`{variant["name"]}`: {variant["errors"][0]}' for variant in engine['variants'] if variant['errors']]
        )
    return '\n'.join(parts)


def live_markdown(report: dict[str, Any]) -> str:
    """The live-events section of `docs/benchmarks.md` (without the markers)."""
    consumers = '; '.join(
        f'{name}: {live["description"]}, consumer `{live["consumer"]}`'
        for name, live in report['live_events'].items()
        if 'consumer' in live
    )
    parts = _preamble(
        report,
        '',
        [
            f'- Workload: {live_title(report)[len("Live events: ") :]}. The model stamps each delta with '
            '`time.perf_counter()` as it yields it; the consumer, `stream_agent_events` in the same process, stamps '
            'it when it receives it. Latency is per delta, over every delta of every run.',
            f'- {consumers}. The model task publishes in batches (100 ms by default).',
            '- Stored bytes: the protobuf size of the workflow history (Temporal); every value of the system-database '
            "rows keyed by the run's workflow id, stream rows included (DBOS); the JSON size of the data of the flow "
            "run's artifacts (Prefect). Extra bytes per run: the median with a topic minus the median without. Load "
            'per engine in the table.',
        ],
    )
    parts += [_markdown_table(*live_rows(report)), '']
    parts += [f'- {note}' for note in live_notes(report)]
    parts += [''] if live_notes(report) else []
    return '\n'.join(
        parts
        + _errors(
            [f'`{name}`: {live["errors"][0]}' for name, live in report['live_events'].items() if live.get('errors')]
        )
    )


def write_docs(report: dict[str, Any], path: Path) -> None:
    """Replace the text between the bench markers of `path`, for each section the report has.

    The main section goes between the `bench` markers, the live-events section between the `bench-live` ones
    (each created at the end of the file if missing), so that either section can be re-measured on its own.
    """
    if report['engines']:
        _write_section(path, DOCS_BEGIN, DOCS_END, markdown(report))
    if report.get('live_events'):
        _write_section(path, LIVE_DOCS_BEGIN, LIVE_DOCS_END, live_markdown(report), heading='## Live events')
    if report.get('local_activities'):
        _write_section(
            path, LOCAL_DOCS_BEGIN, LOCAL_DOCS_END, local_markdown(report), heading='## Local activities (Temporal)'
        )


def _write_section(path: Path, begin: str, end: str, body: str, heading: str = '') -> None:
    """Put `body` between the markers `begin` and `end` of `path`; where they are missing, add them (under `heading`)."""
    section = f'{begin}\n{body}\n{end}'
    new = f'{heading}\n\n{section}' if heading else section
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'# Benchmarks\n\n{new}\n')
        return
    text = path.read_text()
    if begin in text and end in text:
        head, _, rest = text.partition(begin)
        _, _, tail = rest.partition(end)
        path.write_text(head + section + tail)
    else:
        path.write_text(text.rstrip('\n') + f'\n\n{new}\n')
