"""What a turn reads in one call: thread_context at its start, load_workspace at its first run."""

from __future__ import annotations

from core.store.base import NewFile, Store, ThreadState
from sandbox.types import KeptName
from tests.store.records import KEY, key, turn

CSV = b"a,b\n1,2\n"
BINARY = bytes(range(256)) * 8


async def test_the_context_holds_history_listing_and_state_without_bytes(store: Store) -> None:
    await store.commit_turn(turn(KEY, "ev1", ["m1", "m2", "m3"]))
    await store.commit_turn(turn(KEY, "ev2", ["m4"]))
    await store.put_files(
        KEY, [NewFile("b.bin", BINARY, "run"), NewFile("a.csv", CSV, "attached", "a,b")], 100.0
    )
    kept = (KeptName("df", "DataFrame", "2x2"),)
    await store.save_state(KEY, ThreadState(b"\x80blob", 5, kept, (("fh", "open file"),)), 110.0)

    ctx = await store.thread_context(KEY, history_limit=3)
    assert ctx.messages == tuple(await store.load_messages(KEY, 3)) == ("m2", "m3", "m4")
    assert list(ctx.files) == await store.list_files(KEY)
    assert [(f.name, f.size, f.preview) for f in ctx.files] == [
        ("a.csv", 8, "a,b"),
        ("b.bin", len(BINARY), ""),
    ]
    assert ctx.state == await store.load_state(KEY, with_blob=False)
    assert ctx.state is not None and ctx.state.blob == b"" and ctx.state.size == 5 and ctx.state.kept == kept


async def test_an_unknown_thread_has_an_empty_context(store: Store) -> None:
    await store.commit_turn(turn(key("other"), "ev1", ["elsewhere"]))
    ctx = await store.thread_context(KEY, history_limit=10)
    assert (ctx.messages, ctx.files, ctx.state) == ((), (), None)
    assert (await store.thread_context(key("other"), history_limit=0)).messages == ()


async def test_loading_a_workspace_gives_bytes_and_blob_and_marks_it_used(store: Store) -> None:
    await store.put_files(KEY, [NewFile("b.bin", BINARY, "run"), NewFile("a.csv", CSV, "attached")], 100.0)
    await store.save_state(KEY, ThreadState(b"\x80blob", 5), 100.0)
    files, state = await store.load_workspace(KEY, now=500.0)
    assert [(f.name, data) for f, data in files] == [("a.csv", CSV), ("b.bin", BINARY)]
    assert state is not None and state.blob == b"\x80blob"
    assert await store.sweep_workspaces(idle_before=300.0) == 0  # touched at 500 by the load
    assert await store.sweep_workspaces(idle_before=600.0) == 1


async def test_loading_an_empty_workspace_creates_nothing(store: Store) -> None:
    assert await store.load_workspace(KEY, now=500.0) == ([], None)
    await store.save_state(key("kept"), ThreadState(b"s", 1), 100.0)
    files, state = await store.load_workspace(key("kept"), now=200.0)  # state alone counts as used
    assert files == [] and state is not None and state.blob == b"s"
    assert await store.sweep_workspaces(idle_before=150.0) == 0
    assert await store.sweep_workspaces(idle_before=10_000.0) == 1  # only the kept one existed
