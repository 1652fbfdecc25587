"""SQLite SQL for a thread's workspace: its files, its kept state and when it was last used.

Functions take a connection; the caller (SQLiteStore, through core.store.delegating) owns locking and
transactions.
"""

from __future__ import annotations

from collections.abc import Sequence

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


async def thread_context(db: aiosqlite.Connection, key: ThreadKey, history_limit: int) -> ThreadContext:
    """History, file listing and state description: three reads under the store's one-connection lock."""
    messages = await load_messages(db, key, history_limit)
    files = await list_files(db, key)
    return ThreadContext(tuple(messages), tuple(files), await load_state(db, key, with_blob=False))


async def load_workspace(
    db: aiosqlite.Connection, key: ThreadKey, now: float
) -> tuple[list[tuple[StoredFile, bytes]], ThreadState | None]:
    """Files with bytes and state with blob, touching a non-empty workspace; call inside a transaction."""
    files = await read_files(db, key)
    state = await load_state(db, key, with_blob=True)
    if files or state is not None:
        await touch(db, key, now)
    return files, state


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


async def load_state(db: aiosqlite.Connection, key: ThreadKey, with_blob: bool = True) -> ThreadState | None:
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
