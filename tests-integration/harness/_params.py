"""Parametrization helpers shared by the test modules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

ENGINES: tuple[str, ...] = ('temporal', 'dbos', 'prefect')
"""Every engine, in the order the suite runs them."""


def engine_params(engines: Sequence[str] = ENGINES) -> list[Any]:
    """`pytest.param`s for an `engine` argument: id = engine name (`-k dbos`), one xdist group per engine."""
    return [pytest.param(engine, id=engine, marks=pytest.mark.xdist_group(engine)) for engine in engines]


def skip_before_prefect(version: str, why: str) -> None:
    """Skip the calling test when the installed Prefect is older than `version`, saying `why`."""
    import importlib.metadata

    from packaging.version import Version

    installed = importlib.metadata.version('prefect')
    if Version(installed) < Version(version):
        pytest.skip(f'Prefect {installed}: {why}')
