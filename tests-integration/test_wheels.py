"""Each engine package's wheel, installed alone (with the kernel's wheel) into a clean venv, works and brings no
other engine's SDK.

Wheels are built with `uv build --no-sources` (as for a release) and their dependencies come from the package index.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.xdist_group('wheels')

ROOT = Path(__file__).resolve().parent.parent
SDKS = {'temporal': 'temporalio', 'dbos': 'dbos', 'prefect': 'prefect'}

SMOKE_SCRIPTS = {
    'temporal': """
from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel
from durable_temporal import PydanticAIPlugin, TemporalAgent
agent = TemporalAgent(Agent(TestModel(), name='smoke'))
assert agent.name == 'smoke' and agent.temporal_activities
PydanticAIPlugin()
print('ok')
""",
    'dbos': """
import asyncio, sys, tempfile
from dbos import DBOS
from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel
from durable_dbos import DBOSAgent
directory = tempfile.mkdtemp()
DBOS(config={'name': 'smoke', 'system_database_url': f'sqlite:///{directory}/dbos.sqlite'})
agent = Agent(TestModel(), name='smoke')
@agent.tool_plain
def add(a: int, b: int) -> int:
    return a + b
dbos_agent = DBOSAgent(agent)
DBOS.launch()
result = asyncio.run(dbos_agent.run('add'))
assert result.output == '{"add":0}', result.output
DBOS.destroy()
print('ok')
""",
    'prefect': """
from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel
from durable_prefect import PrefectAgent
agent = PrefectAgent(Agent(TestModel(), name='smoke'))
assert agent.name == 'smoke'
print('ok')
""",
}


def _uv() -> str:
    found = shutil.which('uv')
    assert found, 'uv is needed to build and install the wheels'
    return found


def _run(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    completed = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, f'{" ".join(args)} failed:\n{completed.stdout}\n{completed.stderr}'
    return completed.stdout


@pytest.fixture(scope='module')
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The wheels of the kernel and the three engine packages, built once."""
    out = tmp_path_factory.mktemp('wheels')
    built: dict[str, Path] = {}
    for package in ('kernel', 'temporal', 'dbos', 'prefect'):
        # The sdist, then the wheel built from it: as a release builds them (and what `twine check` reads).
        _run(_uv(), 'build', '--package', f'durable-{package}', '--no-sources', '--out-dir', str(out))
        (wheel,) = out.glob(f'durable_{package}-*.whl')
        built[package] = wheel
    return built


def _clean_env() -> dict[str, str]:
    # The test runs under `uv run`: do not let the workspace venv leak into the new one.
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {'VIRTUAL_ENV', 'PYTHONPATH', 'UV_PROJECT_ENVIRONMENT'}
    }
    env['PREFECT_SERVER_ANALYTICS_ENABLED'] = 'false'
    env['DO_NOT_TRACK'] = '1'
    return env


@pytest.mark.parametrize('engine', ['temporal', 'dbos', 'prefect'])
def test_wheel_alone_in_a_clean_venv(engine: str, wheels: dict[str, Path], tmp_path: Path) -> None:
    venv = tmp_path / 'venv'
    env = _clean_env()
    _run(_uv(), 'venv', '--quiet', '--python', sys.executable, str(venv), cwd=tmp_path, env=env)
    python = venv / 'bin' / 'python'
    _run(
        _uv(),
        'pip',
        'install',
        '--quiet',
        '--python',
        str(python),
        str(wheels['kernel']),
        str(wheels[engine]),
        cwd=tmp_path,
        env=env,
    )

    output = _run(
        str(python), '-c', SMOKE_SCRIPTS[engine], cwd=tmp_path, env={**env, 'PREFECT_HOME': str(tmp_path / 'prefect')}
    )
    assert output.strip().splitlines()[-1] == 'ok'

    installed = _run(_uv(), 'pip', 'list', '--python', str(python), '--format', 'freeze', cwd=tmp_path, env=env).lower()
    names = {line.split('==')[0] for line in installed.splitlines()}
    assert f'durable-{engine}' in names
    assert 'durable-kernel' in names
    others = {sdk for other, sdk in SDKS.items() if other != engine}
    assert not (names & others), f'durable-{engine} brought another engine SDK: {names & others}'
    assert not ({f'durable-{other}' for other in SDKS if other != engine} & names)


PYPI_CLASSIFIERS = {
    'Development Status :: 3 - Alpha',
    'Framework :: Pydantic :: 2',
    'Programming Language :: Python :: 3.10',
    'Programming Language :: Python :: 3.11',
    'Typing :: Typed',
}


@pytest.mark.parametrize('package', ['kernel', 'temporal', 'dbos', 'prefect'])
def test_distributions_carry_what_a_pypi_user_reads(package: str, wheels: dict[str, Path]) -> None:
    import tarfile
    import zipfile
    from email.parser import Parser

    wheel = wheels[package]
    (sdist,) = wheel.parent.glob(f'durable_{package}-*.tar.gz')
    # twine's own validation: the long description renders, the metadata is well formed. As the release workflow runs
    # it, in a tool environment of its own: twine>=7 (the first to read Metadata-Version 2.5) needs a packaging that
    # Prefect 3.4 refuses, so it cannot share the lowest cell's venv.
    _run(_uv(), 'tool', 'run', '--from', 'twine>=7.0', 'twine', 'check', '--strict', str(wheel), str(sdist))

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata_name,) = [name for name in names if name.endswith('.dist-info/METADATA')]
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
        (license_name,) = [name for name in names if name.endswith('.dist-info/licenses/LICENSE')]
        assert archive.read(license_name).decode().startswith('MIT License')
    assert metadata['License-Expression'] == 'MIT'
    assert metadata['Description-Content-Type'] == 'text/markdown'
    assert f'# durable-{package}' in (metadata.get_payload() or '')  # the package README is the long description
    assert metadata['Author']
    assert metadata['Keywords']
    assert set(metadata.get_all('Classifier') or []) >= PYPI_CLASSIFIERS

    with tarfile.open(sdist) as archive:
        root = sdist.name.removesuffix('.tar.gz')
        files = set(archive.getnames())
    assert {f'{root}/LICENSE', f'{root}/CHANGELOG.md', f'{root}/README.md'} <= files
    changelog = (ROOT / 'packages' / f'durable-{package}' / 'CHANGELOG.md').read_text(encoding='utf-8')
    assert f'## {metadata["Version"]}' in changelog or '## Unreleased' in changelog
    assert (ROOT / 'packages' / f'durable-{package}' / 'LICENSE').read_bytes() == (ROOT / 'LICENSE').read_bytes()


@pytest.mark.parametrize('package', ['kernel', 'temporal', 'dbos', 'prefect'])
def test_release_stamp_gives_project_urls_and_readme_links_pypi_can_follow(package: str, tmp_path: Path) -> None:
    import zipfile
    from email.parser import Parser

    # What the release workflow does on a tag, on a copy of the package (the stamp edits the checkout in place).
    folder = f'durable-{package}'
    shutil.copytree(
        ROOT / 'packages' / folder, tmp_path / 'packages' / folder, ignore=shutil.ignore_patterns('__pycache__')
    )
    ref = f'{folder}/v9.9.9'
    command = [sys.executable, str(ROOT / 'scripts' / 'release_metadata.py'), '--package', folder]
    command += ['--repository-url', 'https://git.example.org/acme/durable', '--ref', ref, '--root', str(tmp_path)]
    _run(*command)
    _run(*command)  # a second stamp changes nothing
    out = tmp_path / 'dist'
    _run(_uv(), 'build', str(tmp_path / 'packages' / folder), '--no-sources', '--out-dir', str(out))
    (wheel,) = out.glob('*.whl')
    (sdist,) = out.glob('*.tar.gz')
    _run(_uv(), 'tool', 'run', '--from', 'twine>=7.0', 'twine', 'check', '--strict', str(wheel), str(sdist))

    with zipfile.ZipFile(wheel) as archive:
        (metadata_name,) = [name for name in archive.namelist() if name.endswith('.dist-info/METADATA')]
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    urls = dict(entry.split(', ', 1) for entry in metadata.get_all('Project-URL') or [])
    base = 'https://git.example.org/acme/durable'
    assert urls == {
        'Source': f'{base}/tree/{ref}/packages/{folder}',
        'Documentation': f'{base}/tree/{ref}/docs',
        'Changelog': f'{base}/blob/{ref}/packages/{folder}/CHANGELOG.md',
        'Issues': f'{base}/issues',
    }
    description = metadata.get_payload() or ''
    assert '](../' not in description
    assert f']({base}/blob/{ref}/docs/' in description  # the guide links now open on the forge, at the tag
