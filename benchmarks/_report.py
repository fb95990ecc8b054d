"""Headline ratios, target checks, the terminal table and the markdown section of `docs/benchmarks.md`."""

from __future__ import annotations

import math
import statistics
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


def headline(engine_name: str, engine: dict[str, Any]) -> dict[str, Any]:
    """Ratios ours/reference and ours/floor for one engine, and whether each target is met."""
    concurrency = engine['concurrency']
    ours = _variant(engine, 'ours')
    baseline_name = _BASELINE.get(engine_name, 'reference')
    baseline = _variant(engine, baseline_name) or _variant(engine, 'reference')
    shipped = _variant(engine, 'reference')
    floor = _variant(engine, 'floor')
    result: dict[str, Any] = {
        'baseline': baseline['name'] if baseline else None,
        'ours_vs_reference': {
            'wall_median': ratio(_get(ours, 'median_ms'), _get(baseline, 'median_ms')),
            'wall_p90': ratio(_get(ours, 'p90_ms'), _get(baseline, 'p90_ms')),
            'units': ratio(_get(ours, 'units'), _get(baseline, 'units')),
            'store_bytes': ratio(_get(ours, 'store_bytes'), _get(baseline, 'store_bytes')),
            # Throughput is inverted so that, like the other ratios, below 1 means ours is cheaper.
            'time_per_run_c1': ratio(_throughput(baseline, 1), _throughput(ours, 1)),
            'time_per_run_cmax': ratio(_throughput(baseline, concurrency), _throughput(ours, concurrency)),
        },
        'ours_vs_reference_with_events': {
            'wall_median': ratio(_event(ours, 'median_ms'), _event(baseline, 'median_ms')),
            'units': ratio(_event(ours, 'units'), _event(baseline, 'units')),
        },
        'ours_vs_shipped_reference': {
            'wall_median': ratio(_get(ours, 'median_ms'), _get(shipped, 'median_ms')),
            'units': ratio(_get(ours, 'units'), _get(shipped, 'units')),
        },
        'ours_vs_floor': {
            'wall_median': ratio(_get(ours, 'median_ms'), _get(floor, 'median_ms')),
            'units': ratio(_get(ours, 'units'), _get(floor, 'units')),
            'store_bytes': ratio(_get(ours, 'store_bytes'), _get(floor, 'store_bytes')),
        },
        'store_growth_exponent': {
            name: variant['store_growth_exponent'] for variant in engine['variants'] if (name := variant['name'])
        },
    }
    vs_ref, vs_floor = result['ours_vs_reference'], result['ours_vs_floor']
    growth = result['store_growth_exponent']
    targets: dict[str, bool | None] = {
        'ours/reference wall <= 1.0': _at_most(vs_ref['wall_median'], 1.0),
        'ours/reference units <= 1.0': _at_most(vs_ref['units'], 1.0),
        'ours/floor wall <= 1.3': _at_most(vs_floor['wall_median'], 1.3),
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


def variant_rows(engine: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of one engine's per-variant table (main workload)."""
    concurrency = engine['concurrency']
    header = [
        'variant',
        'median ms',
        'p90 ms',
        'runs/s c1',
        f'runs/s c{concurrency}',
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
                _fmt(_throughput(variant, 1)),
                _fmt(_throughput(variant, concurrency)),
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


def headline_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the headline table (one row per engine)."""
    header = [
        'engine',
        'ours/ref wall',
        'ours/ref units',
        'ours/ref units, event handler',
        'ours/ref time per run, many in flight',
        'ours/floor wall',
        'ours/floor units',
        'bytes growth ours vs ref',
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
        rows.append(
            [
                name + baseline,
                _fmt(vs_ref['wall_median'], 2),
                _fmt(vs_ref['units'], 2),
                _fmt(head['ours_vs_reference_with_events']['units'], 2),
                _fmt(vs_ref['time_per_run_cmax'], 2),
                _fmt(vs_floor['wall_median'], 2),
                _fmt(vs_floor['units'], 2),
                f'{_fmt(growth.get("ours"), 2)} vs {_fmt(growth.get("reference"), 2)}',
                ', '.join(missed) or ('none' if not unknown else f'none (not measured: {len(unknown)})'),
            ]
        )
    return header, rows


def print_report(report: dict[str, Any], console: Console) -> None:
    """Print one table per engine, then the headline table; then the live-events table if that section ran."""
    if report['engines']:
        _print_main(report, console)
    if report.get('live_events'):
        header, rows = live_rows(report)
        table = Table(title=live_title(report))
        for column in header:
            table.add_column(column, justify='left' if column == 'engine' else 'right')
        for row in rows:
            table.add_row(*row)
        console.print(table)
        for note in live_notes(report):
            console.print(f'- {note}', highlight=False)
        for name, live in report['live_events'].items():
            for error in live.get('errors', [])[:3]:
                console.print(f'[red]{name}/live events: {error}[/red]')
    local = report.get('local_activities')
    if local:
        header, rows = local_rows(local)
        table = Table(title=local_title(local))
        for column in header:
            table.add_column(column, justify='left' if column == 'activities' else 'right')
        for row in rows:
            table.add_row(*row)
        console.print(table)
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


def local_markdown(report: dict[str, Any]) -> str:
    """The local-activities section of `docs/benchmarks.md` (without the markers)."""
    local = report['local_activities']
    machine = report['machine']
    parts = [
        f'Measured {report["started"]} with `{report["command"]}`; load average (1/5/15 min) before: '
        f'{report["load_before"]}, after: {report["load_after"]}.',
        '',
        f'- Machine: {machine["cpu"]}, {machine["cores"]} cores, {machine["memory_gb"]:.1f} GB RAM; Python '
        f'{machine["python"]}; {", ".join(f"{name} {version}" for name, version in machine["versions"].items())}.',
        f'- Workload: {local_title(local)}. `durable_temporal.TemporalAgent` with the default activities and with '
        '`local_activities=True`, one worker for both, same client and converter as the main section.',
        '- History bytes: the protobuf size of the workflow history (the median run).',
        '',
    ]
    if report.get('noisy'):
        parts += [
            '!!! warning "Noisy numbers"',
            '    These numbers were taken while other jobs were running on the machine (see the load average). '
            'Re-take them on a quiet machine before quoting them.',
            '',
        ]
    parts += [_markdown_table(*local_rows(local)), '', f'- {local_verdict(local)}', '']
    if local.get('errors'):
        parts += ['Errors:', '', *(f'- {error}' for error in local['errors'][:3]), '']
    return '\n'.join(parts)


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
        for title, (header, rows) in (
            (
                f'{name}: T={report["options"]["turns"]} K={report["options"]["tools"]}',
                variant_rows(engine),
            ),
            (f'{name}: long conversation (ms, durable units, bytes per run)', long_rows(engine)),
        ):
            table = Table(title=title)
            for column in header:
                table.add_column(column, justify='left' if column == 'variant' else 'right')
            for row in rows:
                table.add_row(*row)
            console.print(table)
        for variant in engine['variants']:
            for error in variant['errors'][:3]:
                console.print(f'[red]{name}/{variant["name"]}: {error}[/red]')
    header, rows = headline_rows(report)
    table = Table(title='Headline: below 1.0 means ours is cheaper')
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)
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
    if targets.get('ours/floor wall <= 1.3') is False:
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
        found.append(sentence + '.')
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


def markdown(report: dict[str, Any]) -> str:
    """The numbers section of `docs/benchmarks.md` (without the markers)."""
    options = report['options']
    machine = report['machine']
    concurrency = ', '.join(
        f'{engine["concurrency"]} on {name}' for name, engine in report['engines'].items() if 'concurrency' in engine
    )
    parts = [
        f'Measured {report["started"]} with `{report["command"]}` ({report["elapsed_s"]:.0f} s in all).',
        '',
        f'- Machine: {machine["cpu"]}, {machine["cores"]} cores, {machine["memory_gb"]:.1f} GB RAM, '
        f'{machine["os"]}; Python {machine["python"]}.',
        f'- Versions: {", ".join(f"{name} {version}" for name, version in machine["versions"].items())}.',
        f'- Load average (1/5/15 min) before: {report["load_before"]}; after: {report["load_after"]} (the run itself keeps about one core busy).',
        f'- Workload: T={options["turns"]} model turns, K={options["tools"]} parallel tool calls per turn, '
        f'{options["result_bytes"]} B per tool result; {options["runs"]} timed runs per variant after '
        f'{_count(options["warmup"], "warm-up run")}, interleaved round-robin; '
        f'{_count(options["event_runs"], "run")} with an event stream handler; throughput with as many runs as '
        f'may be in flight at once on one worker ({concurrency}), besides the sequential runs; long conversation T={options["long_turns"]} with one '
        f'{options["long_result_bytes"]} B tool result per turn ({_count(options["long_runs"], "run")} each).',
        '- Durable units: activities scheduled in the workflow history (Temporal), rows recorded in '
        '`operation_outputs` (DBOS steps), task runs of the flow run (Prefect). Stored bytes: the protobuf size of the '
        'history events, what the Temporal server keeps and its history limits count (JSON: the history exported with '
        "`WorkflowHistory.to_json()`, the form the reference's published sizes use); every value of the DBOS "
        "system-database rows keyed by the run's workflow id; the files of the results the Prefect tasks persisted.",
        '',
    ]
    if report.get('noisy'):
        parts += [
            '!!! warning "Noisy numbers"',
            '    These numbers were taken while other jobs were running on the machine (see the load average). '
            'Re-take them on a quiet machine before quoting them.',
            '',
        ]
    parts += ['### Headline', '', _markdown_table(*headline_rows(report)), '']
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
        parts += [f'- `{variant["name"]}`: {variant["description"]}' for variant in engine['variants']]
        parts += ['', _markdown_table(*variant_rows(engine)), '']
        parts += ['Long conversation (median ms, durable units, bytes per run):', '']
        parts += [_markdown_table(*long_rows(engine)), '']
        errors = [f'`{variant["name"]}`: {variant["errors"][0]}' for variant in engine['variants'] if variant['errors']]
        if errors:
            parts += ['Errors:', '', *(f'- {error}' for error in errors), '']
    return '\n'.join(parts)


def live_markdown(report: dict[str, Any]) -> str:
    """The live-events section of `docs/benchmarks.md` (without the markers)."""
    machine = report['machine']
    consumers = '; '.join(
        f'{name}: {live["description"]}, consumer `{live["consumer"]}`'
        for name, live in report['live_events'].items()
        if 'consumer' in live
    )
    parts = [
        f'Measured {report["started"]} with `{report["command"]}`; load average (1/5/15 min) before: '
        f'{report["load_before"]}, after: {report["load_after"]} (per engine in the table).',
        '',
        f'- Machine: {machine["cpu"]}, {machine["cores"]} cores, {machine["memory_gb"]:.1f} GB RAM; Python '
        f'{machine["python"]}; {", ".join(f"{name} {version}" for name, version in machine["versions"].items())}.',
        f'- Workload: {live_title(report)[len("Live events: ") :]}. The model stamps each delta with '
        '`time.perf_counter()` as it yields it; the consumer, `stream_agent_events` in the same process, stamps it '
        'when it receives it. Latency is per delta, over every delta of every run.',
        f'- {consumers}. The model task publishes in batches (100 ms by default).',
        '- Stored bytes: the protobuf size of the workflow history (Temporal); every value of the system-database '
        "rows keyed by the run's workflow id, stream rows included (DBOS); the JSON size of the data of the flow "
        "run's artifacts (Prefect). Extra bytes per run: the median with a topic minus the median without.",
        '',
    ]
    if report.get('noisy'):
        parts += [
            '!!! warning "Noisy numbers"',
            '    These numbers were taken while other jobs were running on the machine (see the load average). '
            'Re-take them on a quiet machine before quoting them.',
            '',
        ]
    parts += [_markdown_table(*live_rows(report)), '']
    parts += [f'- {note}' for note in live_notes(report)]
    parts += [''] if live_notes(report) else []
    errors = [f'`{name}`: {live["errors"][0]}' for name, live in report['live_events'].items() if live.get('errors')]
    if errors:
        parts += ['Errors:', '', *(f'- {error}' for error in errors), '']
    return '\n'.join(parts)


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
