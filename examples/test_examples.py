"""Runs every example, and the demo, as a user would (a subprocess, the fake model), and checks what it prints.

Run: `uv run pytest examples -n 2 --dist loadgroup` (the lead's `just test examples`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _pytest.mark.structures import ParameterSet

from examples.prefect_server import SETTINGS_ENV, local_prefect_server, prefect_env

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = Path(__file__).resolve().parent
ENGINES = ('dbos', 'temporal', 'prefect')

EXPECTED_OUTPUT = {
    'quickstart': 'Mexico City',
    'tools_deps': 'charged 42.50 EUR',
    'mcp_server': 'sunny, 21 degrees',
    'human_approval': 'refunded 42.50 EUR',
    'model_selection': 'fast model',
    'event_streaming': '[tool call]',
    'production': 'runs survive restarts',
    'secrets_and_clients': 'the API key is nowhere in the',
    'long_conversation': 'I remember 5 messages: hello, my name is Ann, I live in Lima, I like tea, what do you know '
    'about me? (continued as new 1 times)',
}
"""What each example must print (the same scenario on every engine)."""

EXTRA_ARGS = {'production': ['--once']}
TIMEOUT = 180


def _examples() -> list[tuple[str, str]]:
    return [
        (engine, path.stem)
        for engine in ENGINES
        for path in sorted((EXAMPLES / engine).glob('*.py'))
        if not path.stem.startswith('_')
    ]


def _example_params() -> list[ParameterSet]:
    # The Prefect examples share one Prefect server, so they run on one xdist worker (`--dist loadgroup`).
    return [
        pytest.param(engine, name, id=f'{engine}-{name}', marks=[pytest.mark.xdist_group(name=engine)])
        for engine, name in _examples()
    ]


@pytest.fixture(scope='module')
def prefect_api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One local Prefect server for the Prefect examples (instead of a temporary server per example process)."""
    with local_prefect_server(tmp_path_factory.mktemp('prefect')) as url:
        yield url


def _run(
    args: list[str], timeout: float = TIMEOUT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, 'UV_COMPILE_BYTECODE': '1', **SETTINGS_ENV, **(env or {})}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_every_example_has_an_expected_output() -> None:
    names = {name for _, name in _examples()}
    assert names <= set(EXPECTED_OUTPUT), f'add the expected output of {names - set(EXPECTED_OUTPUT)}'
    assert ('dbos', 'quickstart') in _examples()


@pytest.mark.parametrize(('engine', 'name'), _example_params())
def test_example(engine: str, name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    env = prefect_env(tmp_path, request.getfixturevalue('prefect_api_url')) if engine == 'prefect' else {}
    result = _run(['-m', f'examples.{engine}.{name}', *EXTRA_ARGS.get(name, [])], env=env)
    assert result.returncode == 0, f'exit {result.returncode}\n{result.stdout}\n{result.stderr}'
    assert EXPECTED_OUTPUT[name] in result.stdout, f'{result.stdout}\n{result.stderr}'


def test_demo_help() -> None:
    result = _run(['-m', 'examples.demo', '--help'], timeout=60)
    assert result.returncode == 0, result.stderr
    for flag in ('--model', '--crash-after', '--keep-server', 'temporal', 'prefect'):
        assert flag in result.stdout


@pytest.mark.parametrize(
    'engine', [pytest.param(engine, marks=[pytest.mark.xdist_group(name=engine)]) for engine in ENGINES]
)
def test_demo_resumes_without_repeating_recorded_calls(engine: str, tmp_path: Path) -> None:
    result = _run(['-m', 'examples.demo', engine, '--latency', '0.2', '--dir', str(tmp_path)], env={'COLUMNS': '250'})
    assert result.returncode == 0, f'{result.stdout}\n{result.stderr}'
    assert 'SIGKILL process 1' in result.stdout
    assert '4 call(s) recorded before the crash were not repeated' in result.stdout
    assert 'final answer' in result.stdout
    if engine != 'dbos':  # the engines with a web UI: its link dies with the server, and the demo says so
        assert 'run the demo with --keep-server to explore the run in the UI' in result.stdout


@pytest.mark.xdist_group(name='dbos')
def test_demo_reports_repeated_calls_when_tools_are_not_durable(tmp_path: Path) -> None:
    # Tool calls as plain workflow code (like pydantic_ai.durable_exec.dbos): the crash repeats them, and the demo
    # must say so and fail.
    result = _run(['-m', 'examples.demo', '--tools-not-durable', '--latency', '0.2', '--dir', str(tmp_path)])
    assert result.returncode == 1, f'{result.stdout}\n{result.stderr}'
    assert 'Not crash-safe' in result.stdout
    assert 'book_flight' in result.stdout.split('Not crash-safe', 1)[1]


def _stop(pid: int) -> None:
    """Stop a server the demo left running, by PID, and wait until it is gone."""
    import signal
    import time

    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    'engine', [pytest.param(engine, marks=[pytest.mark.xdist_group(name=engine)]) for engine in ('temporal', 'prefect')]
)
def test_demo_with_keep_server_leaves_a_ui_link_that_works(engine: str, tmp_path: Path) -> None:
    import re
    import urllib.request

    result = _run(['-m', 'examples.demo', engine, '--keep-server', '--dir', str(tmp_path)], env={'COLUMNS': '250'})
    kept = re.search(r'stop it with: kill (\d+)', result.stdout)
    try:
        assert result.returncode == 0, f'{result.stdout}\n{result.stderr}'
        assert kept, result.stdout
        link = re.search(r'The run in the web UI: (http://\S+)', result.stdout)
        assert link, result.stdout
        assert '--keep-server to explore' not in result.stdout
        # What a browser asks for when the link is clicked: the UI's page for the run (its single-page app).
        request = urllib.request.Request(link.group(1), headers={'Accept': 'text/html'})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
            assert '<html' in response.read().decode().lower()
    finally:
        if kept:
            _stop(int(kept.group(1)))
