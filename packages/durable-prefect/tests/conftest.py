from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from durable_prefect.testing import prefect_test_server


@pytest.fixture(scope='session')
def anyio_backend() -> str:
    return 'asyncio'


@pytest.fixture(scope='session')
def prefect_server() -> Iterator[Path]:
    """One ephemeral Prefect server per session and xdist worker (it takes ~10 s to start)."""
    with prefect_test_server() as home:
        yield home
