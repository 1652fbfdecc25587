"""Migrations run once, in order, inside a transaction, and are recorded in the file."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import pytest

from core.store.base import StoreError
from core.store.migrations import MIGRATIONS, Migration
from core.store.sqlite import SQLiteStore
from tests.store.records import KEY, turn

EXTRA = Migration("900_notes", ("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",))


async def _rows(path: Path, sql: str) -> list[tuple]:
    async with aiosqlite.connect(path) as db:
        return [tuple(r) for r in await db.execute_fetchall(sql)]


async def test_fresh_file_gets_every_migration_recorded_in_order(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    await store.open()
    await store.close()

    recorded = await _rows(db_path, "SELECT name FROM migrations ORDER BY rowid")
    assert [r[0] for r in recorded] == [m.name for m in MIGRATIONS]
    tables = {r[0] for r in await _rows(db_path, "SELECT name FROM sqlite_schema WHERE type = 'table'")}
    for table in ("conversations", "messages", "events", "turns", "audit", "usage", "limits", "buckets"):
        assert table in tables
    assert await _rows(db_path, "PRAGMA journal_mode") == [("wal",)]


async def test_reopen_applies_nothing_twice_and_keeps_data(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    await store.open()
    await store.commit_turn(turn(KEY, "ev1", ['{"role": "user"}']))
    await store.close()
    before = await _rows(db_path, "SELECT name, applied_at FROM migrations ORDER BY rowid")

    again = SQLiteStore(db_path)
    await again.open()
    assert await again.load_messages(KEY, 10) == ['{"role": "user"}']
    await again.close()

    assert await _rows(db_path, "SELECT name, applied_at FROM migrations ORDER BY rowid") == before


async def test_reopen_with_a_new_migration_applies_only_that_one_once(db_path: Path) -> None:
    first = SQLiteStore(db_path)
    await first.open()
    await first.close()

    for _ in range(2):  # the second open would fail with "table notes already exists" if it re-ran
        upgraded = SQLiteStore(db_path, migrations=(*MIGRATIONS, EXTRA))
        await upgraded.open()
        await upgraded.close()

    recorded = [r[0] for r in await _rows(db_path, "SELECT name FROM migrations ORDER BY rowid")]
    assert recorded == [*(m.name for m in MIGRATIONS), "900_notes"]
    assert await _rows(db_path, "SELECT count(*) FROM notes") == [(0,)]


async def test_failing_migration_leaves_nothing_behind(db_path: Path) -> None:
    first = SQLiteStore(db_path)
    await first.open()
    await first.close()
    broken = Migration("901_broken", ("CREATE TABLE half (x)", "CREATE TABLE half (x)"))

    with pytest.raises(StoreError):
        await SQLiteStore(db_path, migrations=(*MIGRATIONS, broken)).open()

    tables = {r[0] for r in await _rows(db_path, "SELECT name FROM sqlite_schema WHERE type = 'table'")}
    assert "half" not in tables
    assert ("901_broken",) not in await _rows(db_path, "SELECT name FROM migrations")
    fixed = SQLiteStore(db_path)
    await fixed.open()  # the file is still good for the code that made it
    await fixed.close()


async def test_file_from_a_newer_codebot_is_refused(db_path: Path) -> None:
    newer = SQLiteStore(db_path, migrations=(*MIGRATIONS, EXTRA))
    await newer.open()
    await newer.close()

    with pytest.raises(StoreError, match="newer codebot"):
        await SQLiteStore(db_path).open()


async def test_another_programs_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    async with aiosqlite.connect(path) as other:
        await other.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY)")
        await other.commit()

    with pytest.raises(StoreError, match="not a codebot database"):
        await SQLiteStore(path).open()

    tables = {r[0] for r in await _rows(path, "SELECT name FROM sqlite_schema WHERE type = 'table'")}
    assert tables == {"photos"}
