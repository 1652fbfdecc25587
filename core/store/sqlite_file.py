"""Checks on the database file before aiosqlite opens it. Blocking: run it with asyncio.to_thread."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from core.store.base import StoreError
from core.store.sqlite_errors import corrupt_error, translate

_MAGIC = b"SQLite format 3\x00"


def prepare_file(path: str) -> None:
    """Create the file's directory, refuse a non-SQLite file, and prove the file can be opened.

    Raises:
        StoreError: the directory cannot be made, the file is not SQLite, or it cannot be opened.
    """
    file = Path(path)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create the directory {file.parent} for the database (CODEBOT_DB={path}): {exc.strerror}"
        ) from exc
    _refuse_foreign_bytes(file)
    try:
        # Opening here, off the event loop, means aiosqlite's own connect cannot fail on the path.
        sqlite3.connect(path).close()
    except sqlite3.Error as exc:
        raise translate(exc, path) from exc


def _refuse_foreign_bytes(file: Path) -> None:
    # SQLite silently treats some tiny non-database files as empty databases and overwrites them; a
    # mistyped CODEBOT_DB must never cost the user the file it points at.
    try:
        with file.open("rb") as f:
            head = f.read(len(_MAGIC))
    except FileNotFoundError:
        return
    except IsADirectoryError as exc:
        raise StoreError(f"CODEBOT_DB={file} is a directory; point it at a file inside it") from exc
    except OSError as exc:
        raise StoreError(f"cannot read the database file (CODEBOT_DB={file}): {exc.strerror}") from exc
    if head and head != _MAGIC:
        raise corrupt_error(str(file))
