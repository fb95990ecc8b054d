"""Importing the kernel under a pydantic-ai 2.x release older than the first supported one fails with a clear message."""

from __future__ import annotations

import subprocess
import sys

import pytest

_IMPORT_AS = """
import importlib.metadata as metadata
real = metadata.version
metadata.version = lambda name: {version!r} if name == 'pydantic-ai-slim' else real(name)
import durable_kernel
print('imported')
"""


def _import_with_version(version: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, '-c', _IMPORT_AS.format(version=version)], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize('version', ['2.0.0', '2.32.9'])
def test_a_2x_release_before_the_first_supported_is_refused_at_import(version: str) -> None:
    result = _import_with_version(version)
    assert result.returncode != 0
    assert f'2.33.0+ on the 2.x line; {version} is installed' in result.stderr


def test_the_installed_release_imports() -> None:
    result = _import_with_version(__import__('importlib.metadata').metadata.version('pydantic-ai-slim'))
    assert result.stdout.strip() == 'imported', result.stderr
