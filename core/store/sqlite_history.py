"""SQL for conversations, their messages, processed events and turn bookkeeping.

Functions take a connection; the caller (SQLiteStore) owns locking and transactions.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiosqlite

from core.types import ThreadKey

# Opportunistic sweeps delete at most this many rows per call so no single call pays for a backlog.
SWEEP_ROWS = 500

# A constant fragment spliced into SQL text; the key's values are always bound as parameters.
_KEY_WHERE = "platform = ? AND workspace = ? AND channel = ? AND thread = ?"


def key_params(key: ThreadKey) -> tuple[str, str, str, str]:
    """Return the thread key as the four column values used in WHERE clauses and INSERTs."""
    return (key.platform, key.workspace, key.channel, key.thread)


async def load_messages(db: aiosqlite.Connection, key: ThreadKey, limit: int) -> list[str]:
    """Return the newest `limit` message bodies of a thread, oldest first."""
    if limit <= 0:
        return []
    rows = await db.execute_fetchall(
        f"""SELECT body FROM messages
            WHERE conversation_id = (SELECT id FROM conversations WHERE {_KEY_WHERE})
            ORDER BY seq DESC LIMIT ?""",
        (*key_params(key), limit),
    )
    return [row[0] for row in reversed(list(rows))]


async def has_conversation(db: aiosqlite.Connection, key: ThreadKey) -> bool:
    """Return whether the thread has stored history or a turn in progress.

    One statement, so it sees one snapshot: a turn that commits between two separate reads would
    otherwise be missed by both (no history yet in the first, no longer started in the second).
    """
    rows = await db.execute_fetchall(
        f"""SELECT EXISTS (SELECT 1 FROM messages WHERE conversation_id =
                (SELECT id FROM conversations WHERE {_KEY_WHERE}))
            OR EXISTS (SELECT 1 FROM turns WHERE state = 'started' AND {_KEY_WHERE})""",
        key_params(key) * 2,
    )
    return bool(next(iter(rows))[0])


async def reset_conversation(db: aiosqlite.Connection, key: ThreadKey) -> int:
    """Delete a thread's conversation and (by cascade) its messages; return the message count."""
    rows = await db.execute_fetchall(
        f"""SELECT count(*) FROM messages WHERE conversation_id =
            (SELECT id FROM conversations WHERE {_KEY_WHERE})""",
        key_params(key),
    )
    await db.execute(f"DELETE FROM conversations WHERE {_KEY_WHERE}", key_params(key))
    return int(next(iter(rows))[0])


async def append_messages(
    db: aiosqlite.Connection, key: ThreadKey, bodies: Sequence[str], now: float
) -> None:
    """Append bodies after the thread's last message, creating the conversation if needed."""
    rows = await db.execute_fetchall(
        """INSERT INTO conversations (platform, workspace, channel, thread, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (platform, workspace, channel, thread) DO UPDATE SET updated_at = excluded.updated_at
           RETURNING id""",
        (*key_params(key), now, now),
    )
    (conversation_id,) = next(iter(rows))
    rows = await db.execute_fetchall(
        "SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conversation_id = ?", (conversation_id,)
    )
    (last_seq,) = next(iter(rows))
    await db.executemany(
        "INSERT INTO messages (conversation_id, seq, body) VALUES (?, ?, ?)",
        [(conversation_id, last_seq + i, body) for i, body in enumerate(bodies, start=1)],
    )


async def claim_event(
    db: aiosqlite.Connection, platform: str, event_id: str, now: float, ttl_s: float
) -> bool:
    """Insert the event, or re-take it if its claim expired; True if this call took it.

    One conditional upsert, atomic on its own: a live claim makes the WHERE false, so no row changes,
    RETURNING yields nothing, and we lose.
    """
    rows = await db.execute_fetchall(
        """INSERT INTO events (platform, event_id, claimed_at, expires_at) VALUES (?, ?, ?, ?)
           ON CONFLICT (platform, event_id) DO UPDATE
           SET claimed_at = excluded.claimed_at, expires_at = excluded.expires_at
           WHERE events.expires_at <= excluded.claimed_at
           RETURNING 1""",
        (platform, event_id, now, now + ttl_s),
    )
    return bool(list(rows))


async def sweep_events(db: aiosqlite.Connection, now: float) -> None:
    """Forget claims that expired (a bounded batch per call)."""
    await db.execute(
        """DELETE FROM events WHERE (platform, event_id) IN
           (SELECT platform, event_id FROM events WHERE expires_at <= ? LIMIT ?)""",
        (now, SWEEP_ROWS),
    )


async def start_turn(
    db: aiosqlite.Connection, key: ThreadKey, event_id: str, user_id: str, question: str, now: float
) -> None:
    """Record a started turn (a redelivered event restarts its row)."""
    await db.execute(
        """INSERT INTO turns (event_id, platform, workspace, channel, thread, user_id, question, state,
                              reason, started_at, finished_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, 'started', NULL, ?, NULL)
           ON CONFLICT (event_id) DO UPDATE SET
             platform = excluded.platform, workspace = excluded.workspace, channel = excluded.channel,
             thread = excluded.thread, user_id = excluded.user_id, question = excluded.question,
             state = 'started', reason = NULL, started_at = excluded.started_at, finished_at = NULL""",
        (event_id, *key_params(key), user_id, question, now),
    )


async def turn_committed(db: aiosqlite.Connection, event_id: str) -> bool:
    """Return whether this event's turn was already committed."""
    rows = await db.execute_fetchall("SELECT state FROM turns WHERE event_id = ?", (event_id,))
    return any(row[0] == "committed" for row in rows)


async def finish_turn(
    db: aiosqlite.Connection,
    key: ThreadKey,
    event_id: str,
    user_id: str,
    state: str,
    reason: str | None,
    now: float,
) -> None:
    """Mark a turn committed or abandoned, creating its row if start_turn was never called."""
    await db.execute(
        """INSERT INTO turns (event_id, platform, workspace, channel, thread, user_id, question, state,
                              reason, started_at, finished_at)
           VALUES (?, ?, ?, ?, ?, ?, '', ?, ?, ?, ?)
           ON CONFLICT (event_id) DO UPDATE SET
             state = excluded.state, reason = excluded.reason, finished_at = excluded.finished_at""",
        (event_id, *key_params(key), user_id, state, reason, now, now),
    )


async def abandon_turn(db: aiosqlite.Connection, event_id: str, reason: str, now: float) -> None:
    """Mark a started turn abandoned and free its thread lock; committed turns stay committed.

    Call inside a transaction."""
    await db.execute(
        """UPDATE turns SET state = 'abandoned', reason = ?, finished_at = ?
           WHERE event_id = ? AND state = 'started'""",
        (reason, now, event_id),
    )
    await db.execute("DELETE FROM thread_locks WHERE owner = ?", (event_id,))


async def unfinished_turns(db: aiosqlite.Connection) -> list[tuple[ThreadKey, str, str]]:
    """Return (key, event_id, question) of turns neither committed nor abandoned, oldest first."""
    rows = await db.execute_fetchall(
        """SELECT platform, workspace, channel, thread, event_id, question FROM turns
           WHERE state = 'started' ORDER BY started_at, event_id"""
    )
    return [(ThreadKey(r[0], r[1], r[2], r[3]), r[4], r[5]) for r in rows]


async def sweep_turns(db: aiosqlite.Connection, before: float) -> None:
    """Forget finished turns older than `before`; they only matter until the restart after a crash."""
    await db.execute(
        """DELETE FROM turns WHERE event_id IN
           (SELECT event_id FROM turns WHERE state != 'started' AND finished_at < ? LIMIT ?)""",
        (before, SWEEP_ROWS),
    )
