from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from dbos import DBOS

from durable_dbos.testing import PostgresUnavailableError, dbos_session, postgres_server, postgres_url, sqlite_url


def test_postgres_url_names_one_database_on_the_server() -> None:
    server = 'postgresql://postgres:@/postgres?host=/tmp/pg'
    assert postgres_url(server, 'dbos_gw1') == 'postgresql://postgres:@/dbos_gw1?host=/tmp/pg'


def test_missing_postgres_is_a_clear_error(tmp_path: Path) -> None:
    with (
        pytest.raises(PostgresUnavailableError, match=r'no PostgreSQL binaries in .*Install the test extra'),
        postgres_server(tmp_path, implementation='debian', debian_bin=tmp_path / 'nothing'),
    ):
        pass  # pragma: no cover


def test_dbos_session_destroys_what_it_launched(tmp_path: Path) -> None:
    with dbos_session(sqlite_url(tmp_path)) as launch:
        launch()
        assert DBOS.workflow_id is None  # launched, outside any workflow
        assert (tmp_path / 'dbos.sqlite').exists()
    with pytest.raises(Exception, match='DBOS.launch'):
        DBOS.launch()  # no instance is left behind


def test_dbos_session_can_own_a_temporary_sqlite_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))
    with dbos_session() as launch:
        launch()
        (owned,) = tmp_path.iterdir()
        assert (owned / 'dbos.sqlite').exists()
    assert list(tmp_path.iterdir()) == []
