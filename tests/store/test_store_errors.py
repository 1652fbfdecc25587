"""Locked, corrupt, full or unwritable databases give a short StoreError, and lose nothing."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from pathlib import Path

import aiosqlite
import pytest

from core.store.base import StoreError
from core.store.sqlite import SQLiteStore
from core.store.sqlite_errors import translate
from tests.store.processes import write_lock_held_elsewhere
from tests.store.records import KEY, turn

REPO = Path(__file__).resolve().parents[2]  # so the child process can import tests.store


async def test_locked_database_fails_writes_within_the_busy_timeout_and_keeps_reads(db_path: Path) -> None:
    store = SQLiteStore(db_path, busy_timeout_s=0.3)
    await store.open()
    try:
        await store.commit_turn(turn(KEY, "e1", ["kept"]))
        async with write_lock_held_elsewhere(db_path):
            started = time.monotonic()
            with pytest.raises(StoreError, match="locked by another process") as caught:
                await store.commit_turn(turn(KEY, "e2", ["new"]))
            assert time.monotonic() - started < 3.0
            assert f"CODEBOT_DB={db_path}" in str(caught.value)
            with pytest.raises(StoreError, match="locked"):
                await store.take_slot("runs:U1", 5, 60.0, now=1.0)
            assert "locked" in await store.health()
            assert await store.load_messages(KEY, 10) == ["kept"]  # WAL readers are still served

        await store.commit_turn(turn(KEY, "e2", ["new"]))  # the same call works once the lock is gone
        assert await store.load_messages(KEY, 10) == ["kept", "new"]
        assert await store.health() == "ok"
    finally:
        await store.close()


async def test_restart_while_another_process_writes_still_opens(db_path: Path) -> None:
    first = SQLiteStore(db_path)
    await first.open()
    await first.commit_turn(turn(KEY, "e1", ["kept"]))
    await first.close()

    async with write_lock_held_elsewhere(db_path):
        store = SQLiteStore(db_path, busy_timeout_s=0.3)
        await store.open()  # up to date: open only reads, so it need not wait for the lock
        try:
            assert await store.load_messages(KEY, 10) == ["kept"]
        finally:
            await store.close()


async def test_new_database_locked_by_another_process_cannot_be_opened(db_path: Path) -> None:
    await asyncio.to_thread(db_path.parent.mkdir)
    async with write_lock_held_elsewhere(db_path):
        with pytest.raises(StoreError, match="locked by another process"):
            await SQLiteStore(db_path, busy_timeout_s=0.3).open()


@pytest.mark.parametrize(
    "junk",
    [bytes(range(256)) * 64, b"x", b"notes from the meeting\n"],
    ids=["binary", "one-byte", "text"],
)
async def test_non_database_file_is_refused_and_left_as_it_was(tmp_path: Path, junk: bytes) -> None:
    path = tmp_path / "codebot.db"
    await asyncio.to_thread(path.write_bytes, junk)
    store = SQLiteStore(path)

    with pytest.raises(StoreError, match="is not a codebot database or is corrupt; move it aside") as caught:
        await store.open()

    assert str(path) in str(caught.value)
    assert await asyncio.to_thread(path.read_bytes) == junk
    assert await store.health() == "the store is not open"


def _ruin_all_but_first_page(path: Path) -> None:
    # Page 1 holds the header and schema, so the file still looks like SQLite until a table is read.
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.seek(4096)
        f.write(b"\xa5" * (size - 4096))


async def test_damaged_pages_give_a_store_error(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    await store.open()
    for n in range(40):
        await store.commit_turn(turn(KEY, f"e{n}", ["x" * 3000]))
    await store.close()
    await asyncio.to_thread(_ruin_all_but_first_page, db_path)

    damaged = SQLiteStore(db_path)
    with pytest.raises(StoreError, match="corrupt"):
        await damaged.open()
        await damaged.load_messages(KEY, 10)
    await damaged.close()


async def test_unusable_paths_give_a_store_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    await asyncio.to_thread(not_a_dir.write_text, "x")

    with pytest.raises(StoreError, match="CODEBOT_DB=") as caught:
        await SQLiteStore(not_a_dir / "codebot.db").open()
    assert "database" in str(caught.value)

    with pytest.raises(StoreError, match="is a directory"):
        await SQLiteStore(tmp_path).open()

    # procfs accepts no new files, even from root, so this is read-only for everyone.
    with pytest.raises(StoreError, match="cannot open or write the database file"):
        await SQLiteStore("/proc/codebot-test.db").open()


async def test_full_disk_is_named_plainly(tmp_path: Path) -> None:
    async with aiosqlite.connect(tmp_path / "small.db") as db:
        await db.execute("PRAGMA max_page_count = 3")  # SQLite reports SQLITE_FULL as at a full disk
        with pytest.raises(sqlite3.OperationalError) as caught:
            await db.execute("CREATE TABLE t (x)")
            for _ in range(20):
                await db.execute("INSERT INTO t VALUES (?)", ("x" * 2000,))

    error = translate(caught.value, "/srv/codebot.db")
    assert str(error).startswith("the disk holding the database is full (CODEBOT_DB=/srv/codebot.db)")


async def test_closed_store_says_so(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    with pytest.raises(StoreError, match="not open"):
        await store.load_messages(KEY, 10)
    await store.open()
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="not open"):
        await store.claim_event("slack", "e1", now=0.0, ttl_s=1.0)


# Runs in its own process because it lowers that process's file size limit: the kernel then refuses
# the store's writes past 150 kB, as a full disk would.
_WRITE_FAILURE = """
import asyncio, json, resource, signal, sys
from core.store.base import StoreError
from core.store.sqlite import SQLiteStore
from tests.store.records import KEY, turn

async def main():
    store = SQLiteStore(sys.argv[1])
    await store.open()
    try:
        await store.commit_turn(turn(KEY, "kept", ["first"]))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, resource.RLIM_INFINITY))
        error, n = "", 0
        for n in range(1, 200):
            before = len(await store.load_messages(KEY, 1000))
            try:
                await store.commit_turn(turn(KEY, f"e{n}", ["q" * 5000, "a" * 5000]))
            except StoreError as exc:
                error = str(exc)
                break
        after = len(await store.load_messages(KEY, 1000))
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        await store.commit_turn(turn(KEY, f"e{n}", ["retried q", "retried a"]))
        print(json.dumps({"error": error, "before": before, "after": after}))
    finally:
        await store.close()

asyncio.run(main())
"""


async def test_failed_write_loses_nothing_and_the_store_recovers(db_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _WRITE_FAILURE, str(db_path), stdout=asyncio.subprocess.PIPE, cwd=REPO
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    report = json.loads(out)

    assert (
        report["error"].startswith("the database file could not be read or written")
        or "full" in report["error"]
    )
    assert report["after"] == report["before"]  # the failed turn left no half of itself behind
    store = SQLiteStore(db_path)
    await store.open()
    try:
        history = await store.load_messages(KEY, 1000)
    finally:
        await store.close()
    assert history[0] == "first"
    assert history[-2:] == ["retried q", "retried a"]
    assert len(history) == report["before"] + 2


async def test_health_reports_a_nearly_full_disk(db_path: Path) -> None:
    roomy = SQLiteStore(db_path, min_free_mb=0.0)
    cramped = SQLiteStore(db_path, min_free_mb=1e15)  # more than any disk here has free
    await roomy.open()
    await cramped.open()
    try:
        assert await roomy.health() == "ok"
        assert (await cramped.health()).startswith("the disk holding the database has only")
    finally:
        await cramped.close()
        await roomy.close()
