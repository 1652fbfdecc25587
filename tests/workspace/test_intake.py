"""Attached files: checked against the caps before and while reading, stored under safe names."""

from __future__ import annotations

from pathlib import Path

from bot.console.files import ConsoleFetcher, local_file
from core.store.sqlite import SQLiteStore
from core.threadfiles.caps import MiB, ThreadCaps
from core.threadfiles.intake import NO_FETCHER_TEXT, take_in
from core.types import IncomingFile
from tests.workspace.conftest import KEY, OTHER, Clock

CSV = b"region,sales\nnorth,10\nsouth,30\n"
SMALL = ThreadCaps(file_bytes=1 * MiB, files_bytes=3 * MiB // 2, state_bytes=MiB)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


async def test_an_attached_csv_is_stored_with_its_first_lines(tmp_path, store: SQLiteStore, clock: Clock):
    path = _write(tmp_path, "sales.csv", CSV)
    done = await take_in(store, KEY, [local_file(path)], ConsoleFetcher(), ThreadCaps(), clock())
    assert done.added == ("sales.csv",) and done.notices == ()
    (stored,) = await store.list_files(KEY)
    assert (stored.name, stored.size, stored.origin) == ("sales.csv", len(CSV), "attached")
    assert stored.preview.splitlines()[0] == "region,sales"
    assert await store.list_files(OTHER) == []


async def test_a_declared_size_over_the_file_cap_is_refused_before_reading(store: SQLiteStore, clock: Clock):
    # The path does not exist: had the fetcher been asked, the notice would say so instead.
    big = IncomingFile("huge.csv", "/nonexistent/huge.csv", size=30 * MiB)
    done = await take_in(store, KEY, [big], ConsoleFetcher(), ThreadCaps(), clock())
    (notice,) = done.notices
    assert "huge.csv" in notice and "20 MB" in notice and "`file_size`" in notice
    assert await store.list_files(KEY) == []


async def test_a_file_bigger_than_it_said_is_stopped_at_the_cap(tmp_path, store: SQLiteStore, clock: Clock):
    path = _write(tmp_path, "liar.bin", b"\x00" * (2 * MiB))
    lying = IncomingFile("liar.bin", str(path), size=10)
    done = await take_in(store, KEY, [lying], ConsoleFetcher(), SMALL, clock())
    (notice,) = done.notices
    assert "liar.bin" in notice and "1 MB" in notice and "`file_size`" in notice
    assert await store.list_files(KEY) == []


async def test_a_file_that_would_overfill_the_workspace_is_refused(
    tmp_path, store: SQLiteStore, clock: Clock
):
    first = _write(tmp_path, "a.bin", b"a" * (MiB - 10))
    second = _write(tmp_path, "b.bin", b"b" * (MiB - 10))
    done = await take_in(
        store, KEY, [local_file(first), local_file(second)], ConsoleFetcher(), SMALL, clock()
    )
    assert done.added == ("a.bin",)
    (notice,) = done.notices
    assert "b.bin" in notice and "1 MB limit" in notice and "`thread_files`" in notice
    assert [f.name for f in await store.list_files(KEY)] == ["a.bin"]


async def test_hostile_and_clashing_names_land_safely(tmp_path, store: SQLiteStore, clock: Clock):
    path = _write(tmp_path, "x.csv", CSV)
    files = [
        IncomingFile("../../x.csv", str(path)),
        IncomingFile("x.csv", str(path)),
        IncomingFile(".env", str(path)),
    ]
    done = await take_in(store, KEY, files, ConsoleFetcher(), ThreadCaps(), clock())
    assert done.added == ("x.csv", "x (2).csv", "env")
    assert sorted(f.name for f in await store.list_files(KEY)) == ["env", "x (2).csv", "x.csv"]


async def test_unreadable_files_and_a_missing_fetcher_become_notices(
    tmp_path, store: SQLiteStore, clock: Clock
):
    missing = local_file(tmp_path / "gone.csv")
    done = await take_in(store, KEY, [missing, local_file(tmp_path)], ConsoleFetcher(), ThreadCaps(), clock())
    assert "gone.csv: no such file" in done.notices[0]
    assert "not a regular file" in done.notices[1]
    none = await take_in(store, KEY, [missing], None, ThreadCaps(), clock())
    assert none.notices == (NO_FETCHER_TEXT,)
