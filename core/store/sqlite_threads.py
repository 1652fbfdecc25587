"""SQLite SQL for a thread's workspace: its files, its kept state and when it was last used.

Functions take a connection; the caller (SQLiteStore) owns locking and transactions.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager

import aiosqlite

from core.store.base import NewFile, StoredFile, ThreadContext, ThreadState
from core.store.sqlite_history import key_params, load_messages
from core.store.thread_rows import dropped_json, kept_json, parse_dropped, parse_kept, stored_file
from core.types import ThreadKey

_KEY_WHERE = "platform = ? AND workspace = ? AND channel = ? AND thread = ?"
_FILE_COLUMNS = "name, size, sha256, origin, created_at, updated_at, preview"
_IDLE = "SELECT platform, workspace, channel, thread FROM thread_workspaces WHERE touched_at < ?"


async def list_files(db: aiosqlite.Connection, key: ThreadKey) -> list[StoredFile]:
    """Return the thread's files by name; the data column is never read."""
    rows = await db.execute_fetchall(
        f"SELECT {_FILE_COLUMNS} FROM thread_files WHERE {_KEY_WHERE} ORDER BY name", key_params(key)
    )
    return [stored_file(r) for r in rows]


async def read_files(db: aiosqlite.Connection, key: ThreadKey) -> list[tuple[StoredFile, bytes]]:
    rows = await db.execute_fetchall(
        f"SELECT {_FILE_COLUMNS}, data FROM thread_files WHERE {_KEY_WHERE} ORDER BY name", key_params(key)
    )
    return [(stored_file(r), bytes(r[7])) for r in rows]


async def put_files(db: aiosqlite.Connection, key: ThreadKey, files: Sequence[NewFile], now: float) -> None:
    await db.executemany(
        """INSERT INTO thread_files
               (platform, workspace, channel, thread, name, size, sha256, origin,
                created_at, updated_at, preview, data)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (platform, workspace, channel, thread, name) DO UPDATE SET
               size = excluded.size, sha256 = excluded.sha256, origin = excluded.origin,
               updated_at = excluded.updated_at, preview = excluded.preview, data = excluded.data""",
        [
            (*key_params(key), f.name, len(f.data), f.sha256, f.origin, now, now, f.preview, f.data)
            for f in files
        ],
    )
    await touch(db, key, now)


async def delete_files(db: aiosqlite.Connection, key: ThreadKey, names: Sequence[str]) -> int:
    gone = 0
    for name in names:
        cursor = await db.execute(
            f"DELETE FROM thread_files WHERE {_KEY_WHERE} AND name = ?", (*key_params(key), name)
        )
        gone += cursor.rowcount
    return gone


async def load_state(db: aiosqlite.Connection, key: ThreadKey, with_blob: bool) -> ThreadState | None:
    blob = "blob" if with_blob else "x''"
    rows = list(
        await db.execute_fetchall(
            f"SELECT size, kept, dropped, updated_at, {blob} FROM thread_state WHERE {_KEY_WHERE}",
            key_params(key),
        )
    )
    if not rows:
        return None
    size, kept, dropped, updated_at, data = rows[0]
    return ThreadState(bytes(data), int(size), parse_kept(kept), parse_dropped(dropped), float(updated_at))


async def save_state(db: aiosqlite.Connection, key: ThreadKey, state: ThreadState, now: float) -> None:
    await db.execute(
        """INSERT INTO thread_state
               (platform, workspace, channel, thread, size, kept, dropped, updated_at, blob)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (platform, workspace, channel, thread) DO UPDATE SET
               size = excluded.size, kept = excluded.kept, dropped = excluded.dropped,
               updated_at = excluded.updated_at, blob = excluded.blob""",
        (
            *key_params(key),
            len(state.blob),
            kept_json(state.kept),
            dropped_json(state.dropped),
            now,
            state.blob,
        ),
    )
    await touch(db, key, now)


async def touch(db: aiosqlite.Connection, key: ThreadKey, now: float) -> None:
    await db.execute(
        """INSERT INTO thread_workspaces (platform, workspace, channel, thread, touched_at)
           VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (platform, workspace, channel, thread) DO UPDATE
           SET touched_at = max(touched_at, excluded.touched_at)""",
        (*key_params(key), now),
    )


async def clear(db: aiosqlite.Connection, key: ThreadKey) -> tuple[int, bool]:
    files = await db.execute(f"DELETE FROM thread_files WHERE {_KEY_WHERE}", key_params(key))
    state = await db.execute(f"DELETE FROM thread_state WHERE {_KEY_WHERE}", key_params(key))
    await db.execute(f"DELETE FROM thread_workspaces WHERE {_KEY_WHERE}", key_params(key))
    return files.rowcount, state.rowcount > 0


async def sweep(db: aiosqlite.Connection, idle_before: float) -> int:
    """Delete the files and state of every workspace idle since before `idle_before`."""
    columns = "(platform, workspace, channel, thread)"
    await db.execute(f"DELETE FROM thread_files WHERE {columns} IN ({_IDLE})", (idle_before,))
    await db.execute(f"DELETE FROM thread_state WHERE {columns} IN ({_IDLE})", (idle_before,))
    gone = await db.execute("DELETE FROM thread_workspaces WHERE touched_at < ?", (idle_before,))
    return gone.rowcount


class SQLiteThreadFiles:
    """The ThreadFiles part of SQLiteStore (mixed in; SQLiteStore supplies the connection)."""

    def _use(self) -> AbstractAsyncContextManager[aiosqlite.Connection]:
        raise NotImplementedError

    def _write(self) -> AbstractAsyncContextManager[aiosqlite.Connection]:
        raise NotImplementedError

    async def list_files(self, key: ThreadKey) -> list[StoredFile]:
        """Return the thread's files by name, without their bytes."""
        async with self._use() as db:
            return await list_files(db, key)

    async def read_files(self, key: ThreadKey) -> list[tuple[StoredFile, bytes]]:
        """Return the thread's files with their bytes, by name."""
        async with self._use() as db:
            return await read_files(db, key)

    async def thread_context(self, key: ThreadKey, history_limit: int) -> ThreadContext:
        """Read the thread's newest history, file listing and state description under one lock."""
        async with self._use() as db:
            messages = await load_messages(db, key, history_limit)
            files = await list_files(db, key)
            return ThreadContext(tuple(messages), tuple(files), await load_state(db, key, with_blob=False))

    async def load_workspace(
        self, key: ThreadKey, now: float
    ) -> tuple[list[tuple[StoredFile, bytes]], ThreadState | None]:
        """Read files and state with their bytes and mark a non-empty workspace used, in one transaction."""
        async with self._write() as db:
            files = await read_files(db, key)
            state = await load_state(db, key, with_blob=True)
            if files or state is not None:
                await touch(db, key, now)
            return files, state

    async def put_files(self, key: ThreadKey, files: Sequence[NewFile], now: float) -> None:
        """Store files (replacing same-named ones) and mark the workspace used, atomically."""
        async with self._write() as db:
            await put_files(db, key, files, now)

    async def delete_files(self, key: ThreadKey, names: Sequence[str]) -> int:
        """Delete the named files of the thread; return how many were there."""
        async with self._write() as db:
            return await delete_files(db, key, names)

    async def load_state(self, key: ThreadKey, with_blob: bool = True) -> ThreadState | None:
        """Return the thread's kept state, or None when it has none."""
        async with self._use() as db:
            return await load_state(db, key, with_blob)

    async def save_state(self, key: ThreadKey, state: ThreadState, now: float) -> None:
        """Replace the thread's kept state and mark the workspace used."""
        async with self._write() as db:
            await save_state(db, key, state, now)

    async def touch_workspace(self, key: ThreadKey, now: float) -> None:
        """Mark the thread's workspace used now."""
        async with self._use() as db:  # one statement, atomic on its own
            await touch(db, key, now)

    async def clear_workspace(self, key: ThreadKey) -> tuple[int, bool]:
        """Delete the thread's files and state; return (files removed, whether state was removed)."""
        async with self._write() as db:
            return await clear(db, key)

    async def sweep_workspaces(self, idle_before: float) -> int:
        """Delete every workspace last used before `idle_before`; return how many."""
        async with self._write() as db:
            return await sweep(db, idle_before)
