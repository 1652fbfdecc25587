"""PostgreSQL SQL for a thread's workspace: its files, its kept state and when it was last used.

Functions take a connection; the caller (PostgresStore) owns transactions. Deletes that span the
three tables are one statement (data-modifying CTEs), so they see one snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.store.base import NewFile, StoredFile, ThreadContext, ThreadState
from core.store.postgres_history import RELAXED, Conn, key_params
from core.store.thread_rows import dropped_json, kept_json, parse_dropped, parse_kept, stored_file
from core.types import ThreadKey

_KEY_WHERE = "platform = $1 AND workspace = $2 AND channel = $3 AND thread = $4"
_FILE_COLUMNS = "name, size, sha256, origin, created_at, updated_at, preview"
_UPSERT_TOUCHED = """ON CONFLICT (platform, workspace, channel, thread) DO UPDATE
            SET touched_at = greatest(thread_workspaces.touched_at, excluded.touched_at)"""
_TOUCH = f"""INSERT INTO thread_workspaces (platform, workspace, channel, thread, touched_at)
            VALUES ($1, $2, $3, $4, $5) {_UPSERT_TOUCHED}"""
_TOUCH_RELAXED = f"""INSERT INTO thread_workspaces (platform, workspace, channel, thread, touched_at)
            SELECT $1, $2, $3, $4, $5 FROM {RELAXED} {_UPSERT_TOUCHED}"""
# load_workspace's touch: only a workspace that holds files or state (its f and s CTEs) is marked used.
_TOUCH_IF_USED = f"""INSERT INTO thread_workspaces (platform, workspace, channel, thread, touched_at)
            SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT FROM f) OR EXISTS (SELECT FROM s)
            {_UPSERT_TOUCHED}"""


async def list_files(db: Conn, key: ThreadKey) -> list[StoredFile]:
    """Return the thread's files by name; the data column (TOASTed) is never read."""
    rows = await db.fetch(
        f"SELECT {_FILE_COLUMNS} FROM thread_files WHERE {_KEY_WHERE} ORDER BY name", *key_params(key)
    )
    return [stored_file(r) for r in rows]


async def read_files(db: Conn, key: ThreadKey) -> list[tuple[StoredFile, bytes]]:
    rows = await db.fetch(
        f"SELECT {_FILE_COLUMNS}, data FROM thread_files WHERE {_KEY_WHERE} ORDER BY name", *key_params(key)
    )
    return [(stored_file(r), bytes(r[7])) for r in rows]


async def thread_context(db: Conn, key: ThreadKey, history_limit: int) -> ThreadContext:
    """History, file listing and state description in one call of codebot_thread_context (migration 008):
    one snapshot, one round trip."""
    row = await db.fetchrow(
        "SELECT history, files, state FROM codebot_thread_context($1, $2, $3, $4, $5)",
        *key_params(key),
        max(min(history_limit, 2**31 - 1), 0),
    )
    return context(row[0], row[1], row[2])


def context(history: Sequence[str], files: Sequence[Any], state: Any) -> ThreadContext:
    """A ThreadContext from codebot_thread_context's history, files and state (a head without bytes)."""
    head = None
    if state is not None:
        head = ThreadState(b"", int(state[0]), parse_kept(state[1]), parse_dropped(state[2]), float(state[3]))
    return ThreadContext(tuple(history), tuple(stored_file(r) for r in files), head)


async def load_workspace(
    db: Conn, key: ThreadKey, now: float
) -> tuple[list[tuple[StoredFile, bytes]], ThreadState | None]:
    """Files with bytes and state with blob, touching a non-empty workspace, in one statement."""
    row = await db.fetchrow(
        f"""WITH f AS (SELECT name, ROW({_FILE_COLUMNS}, data) AS r FROM thread_files WHERE {_KEY_WHERE}),
                 s AS (SELECT ROW(size, kept, dropped, updated_at, blob) AS r FROM thread_state
                       WHERE {_KEY_WHERE}),
                 t AS ({_TOUCH_IF_USED})
            SELECT ARRAY(SELECT r FROM f ORDER BY name), (SELECT r FROM s)""",
        *key_params(key),
        now,
    )
    files = [(stored_file(r), bytes(r[7])) for r in row[0]]
    return files, None if row[1] is None else _state(row[1])


def _state(row: Any) -> ThreadState:
    """Build a ThreadState from (size, kept, dropped, updated_at, blob)."""
    return ThreadState(bytes(row[4]), int(row[0]), parse_kept(row[1]), parse_dropped(row[2]), float(row[3]))


async def put_files(db: Conn, key: ThreadKey, files: Sequence[NewFile], now: float) -> None:
    """Upsert the files and touch the workspace; the caller runs this in one transaction."""
    await db.executemany(
        """INSERT INTO thread_files
               (platform, workspace, channel, thread, name, size, sha256, origin,
                created_at, updated_at, preview, data)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11)
           ON CONFLICT (platform, workspace, channel, thread, name) DO UPDATE SET
               size = excluded.size, sha256 = excluded.sha256, origin = excluded.origin,
               updated_at = excluded.updated_at, preview = excluded.preview, data = excluded.data""",
        [(*key_params(key), f.name, len(f.data), f.sha256, f.origin, now, f.preview, f.data) for f in files],
    )
    await db.execute(_TOUCH, *key_params(key), now)


async def delete_files(db: Conn, key: ThreadKey, names: Sequence[str]) -> int:
    gone = await db.fetchval(
        f"WITH d AS (DELETE FROM thread_files WHERE {_KEY_WHERE} AND name = ANY($5::text[]) RETURNING 1) "
        "SELECT count(*) FROM d",
        *key_params(key),
        list(names),
    )
    return int(gone)


async def load_state(db: Conn, key: ThreadKey, with_blob: bool = True) -> ThreadState | None:
    blob = "blob" if with_blob else "''::bytea"
    row = await db.fetchrow(
        f"SELECT size, kept, dropped, updated_at, {blob} FROM thread_state WHERE {_KEY_WHERE}",
        *key_params(key),
    )
    return None if row is None else _state(row)


async def save_state(db: Conn, key: ThreadKey, state: ThreadState, now: float) -> None:
    """Upsert the state and touch the workspace in one statement, without a disk flush of its own.

    A run's state is saved during its turn, whose commit comes later and is durable; WAL is flushed in
    order, so that commit makes this save durable too. A server crash before it forgets the state only
    with the turn's history (the turn is reported interrupted): the thread stays consistent.
    """
    await db.execute(
        f"""WITH saved AS (
                INSERT INTO thread_state
                    (platform, workspace, channel, thread, size, kept, dropped, updated_at, blob)
                VALUES ($1, $2, $3, $4, $6, $7, $8, $5, $9)
                ON CONFLICT (platform, workspace, channel, thread) DO UPDATE SET
                    size = excluded.size, kept = excluded.kept, dropped = excluded.dropped,
                    updated_at = excluded.updated_at, blob = excluded.blob)
            {_TOUCH_RELAXED}""",
        *key_params(key),
        now,
        len(state.blob),
        kept_json(state.kept),
        dropped_json(state.dropped),
        state.blob,
    )


async def touch(db: Conn, key: ThreadKey, now: float) -> None:
    await db.execute(_TOUCH, *key_params(key), now)


async def clear(db: Conn, key: ThreadKey) -> tuple[int, bool]:
    row = await db.fetchrow(
        f"""WITH f AS (DELETE FROM thread_files WHERE {_KEY_WHERE} RETURNING 1),
                 s AS (DELETE FROM thread_state WHERE {_KEY_WHERE} RETURNING 1),
                 w AS (DELETE FROM thread_workspaces WHERE {_KEY_WHERE} RETURNING 1)
            SELECT (SELECT count(*) FROM f), (SELECT count(*) FROM s), (SELECT count(*) FROM w)""",
        *key_params(key),
    )
    return int(row[0]), int(row[1]) > 0


async def sweep(db: Conn, idle_before: float) -> int:
    """Delete the files and state of every workspace idle since before `idle_before`.

    The sub-statements run to completion whether or not the final SELECT reads them.
    """
    count = await db.fetchval(
        """WITH gone AS (DELETE FROM thread_workspaces WHERE touched_at < $1
                         RETURNING platform, workspace, channel, thread),
                f AS (DELETE FROM thread_files t USING gone g
                      WHERE (t.platform, t.workspace, t.channel, t.thread)
                          = (g.platform, g.workspace, g.channel, g.thread) RETURNING 1),
                s AS (DELETE FROM thread_state t USING gone g
                      WHERE (t.platform, t.workspace, t.channel, t.thread)
                          = (g.platform, g.workspace, g.channel, g.thread) RETURNING 1)
           SELECT count(*) FROM gone""",
        idle_before,
    )
    return int(count)
