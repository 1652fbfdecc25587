"""PostgreSQL SQL for conversations, their messages, processed events and turn bookkeeping.

Functions take a connection; the caller (PostgresStore) owns transactions. Every function that decides
something (claim, reset) does it in one statement, because READ COMMITTED gives each statement its own
snapshot; commit_turn lives in postgres_commit.
"""

from __future__ import annotations

from typing import Any

from core.types import ThreadKey

Conn = Any  # asyncpg.Connection or a pool's proxy of one (asyncpg ships no type information)

SWEEP_ROWS = 500  # opportunistic sweeps delete at most this many rows per call

_KEY_WHERE = "platform = $1 AND workspace = $2 AND channel = $3 AND thread = $4"

# Joined into a statement whose commit need not wait for the disk: its transaction then commits with
# synchronous_commit off (SET LOCAL, this transaction only). A server crash may forget the last fraction
# of a second of such commits; only for rows that are worth no flush: rate-limit counts, queue tickets,
# lease renewals, a run's saved state (made durable by its turn's commit). Never for claims, history,
# usage or audit. (Read at commit, so where the planner scans
# it does not matter; a statement that matches no row writes nothing to flush anyway.)
RELAXED = "(SELECT set_config('synchronous_commit', 'off', true)) AS relaxed"


def key_params(key: ThreadKey) -> tuple[str, str, str, str]:
    """Return the thread key as the four column values used in WHERE clauses and INSERTs."""
    return (key.platform, key.workspace, key.channel, key.thread)


async def load_messages(db: Conn, key: ThreadKey, limit: int) -> list[str]:
    """Return the newest `limit` message bodies of a thread, oldest first."""
    if limit <= 0:
        return []
    rows = await db.fetch(
        f"""SELECT body FROM messages
            WHERE conversation_id = (SELECT id FROM conversations WHERE {_KEY_WHERE})
            ORDER BY seq DESC LIMIT $5""",
        *key_params(key),
        limit,
    )
    return [row[0] for row in reversed(rows)]


async def has_conversation(db: Conn, key: ThreadKey) -> bool:
    """Return whether the thread has stored history or a turn in progress, in one statement's snapshot."""
    return bool(
        await db.fetchval(
            f"""SELECT EXISTS (SELECT 1 FROM messages WHERE conversation_id =
                    (SELECT id FROM conversations WHERE {_KEY_WHERE}))
                OR EXISTS (SELECT 1 FROM turns WHERE state = 'started' AND {_KEY_WHERE})""",
            *key_params(key),
        )
    )


async def reset_conversation(db: Conn, key: ThreadKey) -> int:
    """Delete a thread's conversation (its messages by cascade); return the message count.

    One statement: the count reads the snapshot the delete started from, so no append slips between.
    """
    count = await db.fetchval(
        f"""WITH gone AS (DELETE FROM conversations WHERE {_KEY_WHERE} RETURNING id)
            SELECT count(*) FROM messages WHERE conversation_id IN (SELECT id FROM gone)""",
        *key_params(key),
    )
    return int(count)


async def claim_event(db: Conn, platform: str, event_id: str, now: float, ttl_s: float) -> bool:
    """Insert the event, or re-take it if its claim expired; True if this call took it.

    ON CONFLICT waits for a concurrent claimer's row and re-checks the WHERE against its committed
    version, so exactly one of any number of racing claims returns a row.
    """
    won = await db.fetchval(
        """INSERT INTO events (platform, event_id, claimed_at, expires_at) VALUES ($1, $2, $3, $4)
           ON CONFLICT (platform, event_id) DO UPDATE
           SET claimed_at = excluded.claimed_at, expires_at = excluded.expires_at
           WHERE events.expires_at <= excluded.claimed_at
           RETURNING 1""",
        platform,
        event_id,
        now,
        now + ttl_s,
    )
    return won is not None


async def sweep_events(db: Conn, now: float) -> None:
    """Forget claims that expired (a bounded batch per call; rows another sweep holds are skipped)."""
    await db.execute(
        """DELETE FROM events WHERE ctid IN
           (SELECT ctid FROM events WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)""",
        now,
        SWEEP_ROWS,
    )


async def start_turn(
    db: Conn, key: ThreadKey, event_id: str, user_id: str, question: str, now: float
) -> None:
    """Record a started turn (a redelivered event restarts its row)."""
    await db.execute(
        """INSERT INTO turns (event_id, platform, workspace, channel, thread, user_id, question, state,
                              reason, started_at, finished_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, 'started', NULL, $8, NULL)
           ON CONFLICT (event_id) DO UPDATE SET
             platform = excluded.platform, workspace = excluded.workspace, channel = excluded.channel,
             thread = excluded.thread, user_id = excluded.user_id, question = excluded.question,
             state = 'started', reason = NULL, started_at = excluded.started_at, finished_at = NULL""",
        event_id,
        *key_params(key),
        user_id,
        question,
        now,
    )


async def abandon_turn(db: Conn, event_id: str, reason: str, now: float) -> None:
    """Mark a started turn abandoned; committed turns stay committed."""
    # One statement: the turn's thread lock (owner = its event id) is freed with it.
    await db.execute(
        """WITH t AS (UPDATE turns SET state = 'abandoned', reason = $1, finished_at = $2
                      WHERE event_id = $3 AND state = 'started')
           DELETE FROM thread_locks WHERE owner = $3""",
        reason,
        now,
        event_id,
    )


async def unfinished_turns(db: Conn) -> list[tuple[ThreadKey, str, str]]:
    """Return (key, event_id, question) of turns neither committed nor abandoned, oldest first."""
    rows = await db.fetch(
        """SELECT platform, workspace, channel, thread, event_id, question FROM turns
           WHERE state = 'started' ORDER BY started_at, event_id"""
    )
    return [(ThreadKey(r[0], r[1], r[2], r[3]), r[4], r[5]) for r in rows]


async def sweep_turns(db: Conn, before: float) -> None:
    """Forget finished turns older than `before`; they only matter until the restart after a crash."""
    await db.execute(
        """DELETE FROM turns WHERE event_id IN
           (SELECT event_id FROM turns WHERE state != 'started' AND finished_at < $1 LIMIT $2
            FOR UPDATE SKIP LOCKED)""",
        before,
        SWEEP_ROWS,
    )
