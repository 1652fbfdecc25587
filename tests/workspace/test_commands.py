"""`/codebot files`, `reset` and `limits` for a thread's workspace, over a real SQLite store."""

from __future__ import annotations

from core.commands import Commands
from core.limits import LimitDefaults, LimitsEngine
from core.store.base import NewFile, ThreadState
from core.store.sqlite import SQLiteStore
from core.types import Author, CommandRequest, CommandResult, ThreadKey
from sandbox.types import KeptName
from tests.workspace.conftest import KEY, OTHER

ME = Author("console", "you")


async def _run(store: SQLiteStore, name: str, thread: ThreadKey | None = KEY) -> CommandResult:
    commands = Commands(store, LimitsEngine(store, LimitDefaults()))
    return await commands.handle(
        CommandRequest(KEY.platform, KEY.workspace, KEY.channel, ME, name, (), thread)
    )


async def _fill(store: SQLiteStore, key: ThreadKey) -> None:
    await store.put_files(key, [NewFile("sales.csv", b"a,b\n1,2\n", "attached", "a,b\n1,2")], 100.0)
    kept = (KeptName("df", "DataFrame", "2 rows"),)
    await store.save_state(key, ThreadState(b"x" * 2048, 2048, kept, (("fh", "open file"),)), 100.0)


async def test_files_lists_files_and_kept_variables_with_sizes(store: SQLiteStore) -> None:
    assert "workspace is empty" in (await _run(store, "files")).text
    await _fill(store, KEY)
    text = (await _run(store, "files")).text
    assert "sales.csv" in text and "8 B" in text and "CSV, attached" in text and "limit 100 MB" in text
    assert "`df` (DataFrame)" in text and "2.0 KB of 50 MB" in text and "`fh` (open file)" in text
    assert "workspace is empty" in (await _run(store, "files", thread=OTHER)).text


async def test_files_outside_a_thread_explains_itself(store: SQLiteStore) -> None:
    result = await _run(store, "files", thread=None)
    assert not result.ok and "inside the thread" in result.text


async def test_reset_clears_files_and_state_of_this_thread_only(store: SQLiteStore) -> None:
    await _fill(store, KEY)
    await _fill(store, OTHER)
    text = (await _run(store, "reset")).text
    assert "Its workspace (1 file and the kept variables) is cleared too." in text
    assert await store.list_files(KEY) == [] and await store.load_state(KEY) is None
    assert len(await store.list_files(OTHER)) == 1 and await store.load_state(OTHER) is not None
    assert (await _run(store, "reset")).text.startswith("This thread has no history")


async def test_limits_shows_the_workspace_caps(store: SQLiteStore) -> None:
    text = (await _run(store, "limits")).text
    for line in (
        "file_size               20 MB",
        "thread_files            100 MB",
        "thread_state            50 MB",
    ):
        assert line in text
    commands = Commands(store, LimitsEngine(store, LimitDefaults()))
    admin = Author("U9", "alice", is_admin=True)
    req = CommandRequest(KEY.platform, KEY.workspace, KEY.channel, admin, "set", ("file_size", "5MB"), KEY)
    assert (await commands.handle(req)).ok
    assert "file_size               5 MB *" in (await _run(store, "limits")).text
