"""`just bench-prefect-keys`: the cost of one Prefect cache key as the conversation grows, before and after a change.

Inside one agent run (its message-key cache), a conversation of N messages is keyed once, then one message at a
time is added and the keys of a model request and of a tool call holding the conversation are timed, as a run
computes them (`value_key` of the task's inputs, messages serialized once per run). With `--compare REF`, the
durable-prefect sources of a git revision are measured too, in child processes that alternate with the working
tree's (before, after, before, after...), so that both sides see the same machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOURCES = 'packages/durable-prefect/src'


def _conversation_pair(index: int) -> list[Any]:
    from pydantic_ai.messages import ModelRequest, ModelResponse, ToolCallPart, ToolReturnPart

    call_id = f'call-{index}'
    return [
        ModelResponse(parts=[ToolCallPart('lookup', {'query': f'orders of customer {index}', 'limit': 10}, call_id)]),
        ModelRequest(
            parts=[ToolReturnPart('lookup', {'rows': [f'order {index}-{row}: 2 items' for row in range(6)]}, call_id)]
        ),
    ]


def measure(sizes: list[int], repeats: int) -> dict[str, Any]:
    """Median CPU microseconds per key, by conversation length, for a model request's key and a tool call's.

    Args:
        sizes: Conversation lengths (messages).
        repeats: Keys timed per length and kind (one message added before each).

    Returns:
        `{'source': path of the measured package, 'keys': {size: {kind: median µs}}}`.
    """
    from pydantic_ai import RunContext
    from pydantic_ai.messages import ModelMessage, ModelRequest, SystemPromptPart, UserPromptPart
    from pydantic_ai.models import ModelRequestParameters
    from pydantic_ai.models.test import TestModel
    from pydantic_ai.tools import ToolDefinition
    from pydantic_ai.toolsets import FunctionToolset
    from pydantic_ai.usage import RunUsage

    import durable_prefect
    from durable_prefect import value_key
    from durable_prefect._key_text import message_key_cache
    from durable_prefect._model import _ModelRequest  # pyright: ignore[reportPrivateUsage]
    from durable_prefect._toolset import ToolCallInput

    model = TestModel()
    lookup = ToolDefinition(name='lookup', parameters_json_schema={'type': 'object', 'properties': {}})
    parameters = ModelRequestParameters(function_tools=[lookup])
    toolset = FunctionToolset[Any](id='orders')

    def run_context(history: list[ModelMessage]) -> RunContext[Any]:
        return RunContext(
            deps={'tenant': 'acme'}, model=model, usage=RunUsage(), messages=history, run_step=len(history) // 2
        )

    def model_request_inputs(history: list[ModelMessage]) -> dict[str, Any]:
        # pydantic-ai passes the model a cleaned copy of the history, and the run context holds the history itself.
        request = _ModelRequest(model, list(history), None, parameters, run_context(history))
        return {'request': request}

    def tool_call_inputs(history: list[ModelMessage]) -> dict[str, Any]:
        tool: Any = None
        call = ToolCallInput(toolset, 'lookup', {'query': 'x'}, run_context(history), tool)
        return {'call': call}

    keys: dict[str, dict[str, float]] = {}
    for size in sizes:
        history: list[ModelMessage] = [
            ModelRequest(parts=[SystemPromptPart('You look up orders.'), UserPromptPart('What did acme order?')])
        ]
        with message_key_cache():
            while len(history) < size:
                history.extend(_conversation_pair(len(history)))
            del history[size:]
            value_key(model_request_inputs(history))
            value_key(tool_call_inputs(history))
            timings: dict[str, list[float]] = {'model request': [], 'tool call': []}
            for repeat in range(repeats):
                history.append(_conversation_pair(size + repeat)[len(history) % 2])
                for kind, inputs in (('model request', model_request_inputs), ('tool call', tool_call_inputs)):
                    value = inputs(history)
                    # CPU time, not wall time: on a loaded machine a wall clock measures the other processes.
                    started = time.process_time_ns()
                    value_key(value)
                    timings[kind].append((time.process_time_ns() - started) / 1e3)
        keys[str(size)] = {kind: statistics.median(samples) for kind, samples in timings.items()}
    return {'source': str(Path(durable_prefect.__file__).parent), 'keys': keys}


def _child(sources: Path | None, sizes: list[int], repeats: int) -> dict[str, Any]:
    env = dict(os.environ)
    if sources is not None:
        env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(sources), env.get('PYTHONPATH')]))
    command = [sys.executable, '-m', 'benchmarks.prefect_key_cost', '--child', '--sizes', ','.join(map(str, sizes))]
    output = subprocess.run(
        [*command, '--repeats', str(repeats)], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return json.loads(output.stdout)


def _sources_at(revision: str, into: Path) -> Path:
    archive = subprocess.run(
        ['git', 'archive', '--format=tar', revision, SOURCES], cwd=ROOT, check=True, capture_output=True
    ).stdout
    tar_path = into / 'sources.tar'
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter='data')
    return into / SOURCES


def main(argv: list[str] | None = None) -> None:
    """Measure, print a table (and with `--json`, write the figures)."""
    parser = argparse.ArgumentParser(prog='just bench-prefect-keys', description=__doc__)
    parser.add_argument('--sizes', default='100,1000,3000', help='conversation lengths (default 100,1000,3000)')
    parser.add_argument('--repeats', type=int, default=15, help='keys timed per length and kind (default 15)')
    parser.add_argument('--rounds', type=int, default=3, help='alternating child processes per side (default 3)')
    parser.add_argument('--compare', metavar='REV', help='measure the durable-prefect of this git revision too')
    parser.add_argument('--json', type=Path, metavar='PATH', help='write the figures as JSON')
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(',')]
    if args.child:
        print(json.dumps(measure(sizes, args.repeats)))
        return
    with tempfile.TemporaryDirectory() as scratch:
        sides: dict[str, Path | None] = {'after': None}
        if args.compare:
            sides = {'before': _sources_at(args.compare, Path(scratch)), 'after': None}
        samples: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
        for _ in range(args.rounds):
            for side, sources in sides.items():
                samples[side].append(_child(sources, sizes, args.repeats))
    result: dict[str, Any] = {}
    for side, runs in samples.items():
        result[side] = {
            size: {kind: statistics.median(run['keys'][size][kind] for run in runs) for kind in runs[0]['keys'][size]}
            for size in map(str, sizes)
        }
        print(f'{side}: {runs[0]["source"]}')
    print(f'\nmedian CPU µs per key, one new message ({args.rounds} rounds x {args.repeats} keys)')
    print(f'{"messages":>9} | ' + ' | '.join(f'{side} model request | {side} tool call' for side in result))
    for size in map(str, sizes):
        cells = [f'{result[side][size][kind]:.0f}' for side in result for kind in ('model request', 'tool call')]
        print(f'{size:>9} | ' + ' | '.join(cells))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == '__main__':
    main()
