"""The committed golden histories replay on the current code: what our workflows schedule has not changed."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness.histories import history_files, replay_history

pytestmark = [pytest.mark.anyio, pytest.mark.xdist_group('temporal')]


def test_temporal_golden_histories_cover_every_scenario() -> None:
    from harness import SCENARIOS

    recorded = {path.name.split('.')[0] for path in history_files()}
    assert recorded == set(SCENARIOS)


@pytest.mark.parametrize('path', history_files(), ids=lambda path: f'temporal-{path.stem}')
async def test_golden_history_replays(path: Path) -> None:
    result = await replay_history(path)
    assert result.replay_failure is None
