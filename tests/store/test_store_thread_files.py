"""A thread's workspace in the store: files and kept state per full thread key, on both backends."""

from __future__ import annotations

from core.store.base import NewFile, Store, ThreadState
from sandbox.types import KeptName
from tests.store.backends import Backend
from tests.store.records import KEY, key

CSV = b"a,b\n1,2\n3,4\n"
BINARY = bytes(range(256)) * 40  # any bytes, NULs included


async def test_files_survive_a_reopen_with_their_bytes_and_hash(backend: Backend) -> None:
    store = backend.new()
    await store.open()
    await store.put_files(
        KEY, [NewFile("data.csv", CSV, "attached", "a,b\n1,2"), NewFile("b.bin", BINARY, "run")], 100.0
    )
    await store.close()

    reopened = backend.new()
    await reopened.open()
    try:
        listed = await reopened.list_files(KEY)
        files = await reopened.read_files(KEY)
    finally:
        await reopened.close()
    assert [(f.name, f.size, f.origin) for f in listed] == [
        ("b.bin", len(BINARY), "run"),
        ("data.csv", 12, "attached"),
    ]
    assert dict((f.name, data) for f, data in files) == {"b.bin": BINARY, "data.csv": CSV}
    assert listed[1].sha256 == NewFile("x", CSV, "attached").sha256
    assert (listed[0].preview, listed[1].preview) == ("", "a,b\n1,2")


async def test_a_file_written_again_replaces_the_old_bytes_but_keeps_its_creation_time(store: Store) -> None:
    await store.put_files(KEY, [NewFile("out.txt", b"one", "run")], 100.0)
    await store.put_files(KEY, [NewFile("out.txt", b"second", "run")], 200.0)
    (listed,) = await store.list_files(KEY)
    ((_, data),) = await store.read_files(KEY)
    assert data == b"second" and listed.size == 6
    assert (listed.created_at, listed.updated_at) == (100.0, 200.0)


async def test_state_round_trips_and_can_be_read_without_its_blob(store: Store) -> None:
    kept = (KeptName("df", "DataFrame", "DataFrame 2x2"), KeptName("n", "int", "42"))
    state = ThreadState(b"\x80\x05opaque", 8, kept, (("fh", "open files cannot be kept"),))
    await store.save_state(KEY, state, 100.0)
    full = await store.load_state(KEY)
    light = await store.load_state(KEY, with_blob=False)
    assert full is not None and light is not None
    assert full.blob == b"\x80\x05opaque" and full.kept == kept and full.dropped == state.dropped
    assert light.blob == b"" and light.size == 8 and light.kept == kept
    await store.save_state(KEY, ThreadState(b"new", 3), 200.0)
    again = await store.load_state(KEY)
    assert again is not None and again.blob == b"new" and again.kept == ()


async def test_threads_never_see_each_others_workspace(store: Store) -> None:
    others = [
        key(KEY.thread, channel="C2"),
        key(KEY.thread, workspace="T2"),
        key(KEY.thread, platform="discord"),
    ]
    others.append(key("other-thread"))
    await store.put_files(KEY, [NewFile("mine.csv", CSV, "attached")], 100.0)
    await store.save_state(KEY, ThreadState(b"mine", 4), 100.0)
    for other in others:
        assert await store.list_files(other) == []
        assert await store.read_files(other) == []
        assert await store.load_state(other) is None
    await store.clear_workspace(others[0])
    assert [f.name for f in await store.list_files(KEY)] == ["mine.csv"]


async def test_clear_removes_files_and_state_of_that_thread_only(store: Store) -> None:
    other = key("other")
    for k in (KEY, other):
        await store.put_files(k, [NewFile("a", b"1", "run"), NewFile("b", b"2", "run")], 100.0)
        await store.save_state(k, ThreadState(b"s", 1), 100.0)
    assert await store.clear_workspace(KEY) == (2, True)
    assert await store.list_files(KEY) == [] and await store.load_state(KEY) is None
    assert await store.clear_workspace(KEY) == (0, False)
    assert len(await store.list_files(other)) == 2 and await store.load_state(other) is not None


async def test_sweep_deletes_only_workspaces_idle_since_the_cutoff(store: Store) -> None:
    idle, busy, read_only = key("idle"), key("busy"), key("read-only")
    for k in (idle, busy, read_only):
        await store.put_files(k, [NewFile("f.csv", CSV, "attached")], 100.0)
        await store.save_state(k, ThreadState(b"s", 1), 100.0)
    await store.save_state(busy, ThreadState(b"t", 1), 500.0)
    await store.touch_workspace(read_only, 500.0)  # used by a turn that changed nothing
    await store.touch_workspace(read_only, 50.0)  # an older clock never moves it back
    assert await store.sweep_workspaces(idle_before=300.0) == 1
    assert await store.list_files(idle) == [] and await store.load_state(idle) is None
    for k in (busy, read_only):
        assert [f.name for f in await store.list_files(k)] == ["f.csv"]
        assert await store.load_state(k) is not None
    assert await store.sweep_workspaces(idle_before=300.0) == 0


async def test_files_a_run_removed_are_deleted_by_name(store: Store) -> None:
    other = key("other")
    for k in (KEY, other):
        await store.put_files(k, [NewFile("a", b"1", "run"), NewFile("b", b"2", "run")], 100.0)
    assert await store.delete_files(KEY, ["a", "missing"]) == 1
    assert [f.name for f in await store.list_files(KEY)] == ["b"]
    assert [f.name for f in await store.list_files(other)] == ["a", "b"]
