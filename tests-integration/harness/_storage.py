"""Searching what an engine stored for a string: raw bytes, base64 (pickled values), JSON strings, SQLite cells."""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import cast

__all__ = ('bytes_hold', 'files_hold', 'sqlite_holds')


def bytes_hold(data: bytes, needle: bytes) -> bool:
    """Whether `needle` is in `data` as is, in its base64 decoding (DBOS and Prefect pickle values so), or in a JSON
    string of it (Prefect's result files)."""
    if needle in data:
        return True
    try:
        if needle in base64.b64decode(data):
            return True
    except binascii.Error:
        pass
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return False
    return any(bytes_hold(text.encode(), needle) for text in _json_strings(document))


def _json_strings(document: object) -> Iterator[str]:
    if isinstance(document, str):
        yield document
    elif isinstance(document, dict):
        for value in cast('dict[str, object]', document).values():
            yield from _json_strings(value)
    elif isinstance(document, list):
        for value in cast('list[object]', document):
            yield from _json_strings(value)


def files_hold(files: Iterable[Path], needle: bytes) -> bool:
    """Whether any of `files` holds `needle` (see `bytes_hold`)."""
    return any(bytes_hold(file.read_bytes(), needle) for file in files if file.is_file())


def sqlite_holds(database: Path, needle: bytes) -> bool:
    """Whether the SQLite database's files (its WAL included) or any cell of any of its tables hold `needle`."""
    if files_hold(database.parent.glob(f'{database.name}*'), needle):
        return True
    with sqlite3.connect(database) as connection:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in connection.execute(f'SELECT * FROM "{table}"'):  # names from sqlite_master
                for cell in row:
                    if cell is not None and bytes_hold(cell if isinstance(cell, bytes) else str(cell).encode(), needle):
                        return True
    return False
