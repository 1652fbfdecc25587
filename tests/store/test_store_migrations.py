"""Migrations run once, in order, inside a transaction, and are recorded in the database (both backends)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosqlite
import pytest

from core.store.base import StoreError
from core.store.migrations import MIGRATIONS, Migration
from core.store.sqlite import SQLiteStore
from tests.store.backends import Backend
from tests.store.records import KEY, turn

EXTRA = Migration("900_notes", ("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",))
TABLES = ("conversations", "messages", "events", "turns", "audit", "usage", "limits", "buckets")


async def _recorded(backend: Backend) -> list[str]:
    return [r[0] for r in await backend.rows("SELECT name FROM migrations ORDER BY name")]


async def test_fresh_database_gets_every_migration_recorded_in_order(backend: Backend) -> None:
    store = backend.new()
    await store.open()
    await store.close()

    assert await _recorded(backend) == [m.name for m in MIGRATIONS]
    assert set(TABLES) <= await backend.tables()


async def test_fresh_sqlite_file_is_in_wal_mode(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    await store.open()
    await store.close()
    async with aiosqlite.connect(db_path) as db:
        assert list(await db.execute_fetchall("PRAGMA journal_mode")) == [("wal",)]


async def test_reopen_applies_nothing_twice_and_keeps_data(backend: Backend) -> None:
    store = backend.new()
    await store.open()
    await store.commit_turn(turn(KEY, "ev1", ['{"role": "user"}']))
    await store.close()
    before = await backend.rows("SELECT name, applied_at FROM migrations ORDER BY name")

    again = backend.new()
    await again.open()
    assert await again.load_messages(KEY, 10) == ['{"role": "user"}']
    await again.close()

    assert await backend.rows("SELECT name, applied_at FROM migrations ORDER BY name") == before


async def test_old_schema_is_upgraded_by_a_new_migration_once_and_keeps_data(backend: Backend) -> None:
    first = backend.new()
    await first.open()
    await first.commit_turn(turn(KEY, "ev1", ["kept"]))
    await first.close()

    for _ in range(2):  # the second open would fail with "table notes already exists" if it re-ran
        upgraded = backend.new(migrations=(*MIGRATIONS, EXTRA))
        await upgraded.open()
        assert await upgraded.load_messages(KEY, 10) == ["kept"]
        await upgraded.close()

    assert await _recorded(backend) == [*(m.name for m in MIGRATIONS), "900_notes"]
    assert await backend.rows("SELECT count(*) FROM notes") == [(0,)]


async def test_a_step_runs_its_own_dialect(backend: Backend) -> None:
    # SQLite has no BYTEA type name and PostgreSQL no BLOB: each backend must run its own statement.
    step = Migration(
        "902_blobs", ("CREATE TABLE blobs (b BLOB)",), postgres=("CREATE TABLE blobs (b BYTEA)",)
    )
    store = backend.new(migrations=(*MIGRATIONS, step))
    await store.open()
    await store.close()

    assert "blobs" in await backend.tables()
    kind = "BLOB" if backend.name == "sqlite" else "bytea"
    if backend.name == "sqlite":
        assert await backend.rows("SELECT type FROM pragma_table_info('blobs')") == [(kind,)]
    else:
        query = "SELECT data_type FROM information_schema.columns WHERE table_name = 'blobs'"
        assert await backend.rows(query + " AND table_schema = current_schema()") == [(kind,)]


async def test_failing_migration_leaves_nothing_behind(backend: Backend) -> None:
    first = backend.new()
    await first.open()
    await first.close()
    broken = Migration("901_broken", ("CREATE TABLE half (x INTEGER)", "CREATE TABLE half (x INTEGER)"))

    with pytest.raises(StoreError):
        await backend.new(migrations=(*MIGRATIONS, broken)).open()

    assert "half" not in await backend.tables()
    assert "901_broken" not in await _recorded(backend)
    fixed = backend.new()
    await fixed.open()  # the database is still good for the code that made it
    await fixed.close()


async def test_database_from_a_newer_codebot_is_refused(backend: Backend) -> None:
    newer = backend.new(migrations=(*MIGRATIONS, EXTRA))
    await newer.open()
    await newer.close()

    with pytest.raises(StoreError, match="newer codebot"):
        await backend.new().open()


async def test_replicas_starting_together_migrate_once(backend: Backend) -> None:
    stores = [backend.new() for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        assert await _recorded(backend) == [m.name for m in MIGRATIONS]
        await stores[3].commit_turn(turn(KEY, "ev1", ["seen by all"]))
        for s in stores:
            assert await s.load_messages(KEY, 10) == ["seen by all"]
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_another_programs_database_is_refused_and_left_untouched(backend: Backend) -> None:
    await backend.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY)")

    with pytest.raises(StoreError, match="not a codebot database"):
        await backend.new().open()

    assert await backend.tables() == {"photos"}
