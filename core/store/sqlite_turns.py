"""SQL for turn leases on SQLite (the same contract as postgres_turns; the caller owns the transaction).

One process owns a SQLite file, so nothing here races another replica; the contract is kept the same
so one test-suite covers both backends, and a crash's leftovers are found the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiosqlite

from core.store import sqlite_history as history
from core.store import sqlite_leases as leases
from core.store import sqlite_ledger as ledger
from core.store import sqlite_threads as threads
from core.store.base import TurnBegin, TurnBegun, TurnStart, Workspace
from core.store.sqlite_history import key_params
from core.types import ThreadKey

_KEY = "platform = ? AND workspace = ? AND channel = ? AND thread = ?"


async def start_turn_leased(
    db: aiosqlite.Connection,
    key: ThreadKey,
    event_id: str,
    user_id: str,
    question: str,
    now: float,
    owner: str,
    lease_s: float,
    cap: int | None = None,
) -> TurnStart:
    """Record a started turn with its lease, try the thread's lock, and queue a ticket if it got it."""
    await db.execute(
        """INSERT INTO turns (event_id, platform, workspace, channel, thread, user_id, question, state,
                              reason, started_at, finished_at, owner, lease_until)
           VALUES (?, ?, ?, ?, ?, ?, ?, 'started', NULL, ?, NULL, ?, ?)
           ON CONFLICT (event_id) DO UPDATE SET
             platform = excluded.platform, workspace = excluded.workspace, channel = excluded.channel,
             thread = excluded.thread, user_id = excluded.user_id, question = excluded.question,
             state = 'started', reason = NULL, started_at = excluded.started_at, finished_at = NULL,
             owner = excluded.owner, lease_until = excluded.lease_until""",
        (event_id, *key_params(key), user_id, question, now, owner, now + lease_s),
    )
    if not await leases.lock_thread(db, key, event_id, now, lease_s):  # the turn's lock: owner = its event
        return TurnStart(False)
    if cap is None:
        return TurnStart(True)
    ticket, position = await leases.gate_enter(db, Workspace.of(key), owner, max(cap, 1), now, lease_s)
    return TurnStart(True, ticket, position)


async def begin_turn(db: aiosqlite.Connection, b: TurnBegin) -> TurnBegun:
    """Claim, admit and start a question, as codebot_begin_turn does on PostgreSQL; inside a transaction."""
    if await ledger.limits_version(db, Workspace.of(b.key)) != b.limits_version:
        return TurnBegun("stale")
    if not await history.claim_event(db, b.key.platform, b.event_id, b.now, b.ttl_s):
        return TurnBegun("duplicate")
    if b.check is None:
        return TurnBegun("claimed")
    admission = await ledger.admit_run(db, b.check)
    if admission.refused is not None:
        return TurnBegun("refused", admission)
    if b.owner is None:
        await history.start_turn(db, b.key, b.event_id, b.user_id, b.question, b.now)
        return TurnBegun("started")
    start = await start_turn_leased(
        db, b.key, b.event_id, b.user_id, b.question, b.now, b.owner, b.lease_s, b.cap
    )
    if not start.holds_thread or b.history_limit is None:
        return TurnBegun("started", start=start)
    return TurnBegun("started", start=start, context=await threads.thread_context(db, b.key, b.history_limit))


async def renew_turn(
    db: aiosqlite.Connection, event_id: str, owner: str, now: float, lease_s: float
) -> tuple[str, bool]:
    """Extend the turn's lease and its thread lock's: ("renewed" | "finished" | "lost", thread lock ours)."""
    rows = list(
        await db.execute_fetchall(
            """UPDATE turns SET lease_until = ? WHERE event_id = ? AND owner = ? AND state = 'started'
               RETURNING platform, workspace, channel, thread""",
            (now + lease_s, event_id, owner),
        )
    )
    if not rows:  # a takeover clears the owner; a turn this process finished itself keeps it
        mine = await db.execute_fetchall(
            "SELECT 1 FROM turns WHERE event_id = ? AND owner = ?", (event_id, owner)
        )
        return ("finished" if list(mine) else "lost"), False
    locked = await db.execute_fetchall(
        f"UPDATE thread_locks SET lease_until = ? WHERE {_KEY} AND owner = ? RETURNING 1",
        (now + lease_s, *tuple(rows[0]), event_id),
    )
    return "renewed", bool(list(locked))


async def take_over_turns(
    db: aiosqlite.Connection,
    now: float,
    reason: str,
    expired_only: bool = True,
    platforms: Sequence[str] | None = None,
) -> list[tuple[ThreadKey, str, str]]:
    """Abandon started turns whose lease ended (or all of them) and free their threads; return them."""
    only = "" if platforms is None else f" AND platform IN ({', '.join('?' * len(platforms))})"
    rows = await db.execute_fetchall(
        f"""UPDATE turns
            SET state = 'abandoned', reason = ?, finished_at = ?, owner = NULL, lease_until = NULL
            WHERE state = 'started' AND (? OR lease_until IS NULL OR lease_until <= ?){only}
            RETURNING platform, workspace, channel, thread, event_id, question, started_at""",
        (reason, now, int(not expired_only), now, *(platforms or ())),
    )
    taken = sorted(rows, key=lambda r: (r[6], r[4]))  # RETURNING has no ORDER BY on SQLite
    for r in taken:
        await db.execute(f"DELETE FROM thread_locks WHERE {_KEY} AND owner = ?", (*tuple(r[:4]), r[4]))
    return [(ThreadKey(r[0], r[1], r[2], r[3]), r[4], r[5]) for r in taken]


async def release_thread(db: aiosqlite.Connection, key: ThreadKey, event_id: str) -> None:
    """Free the thread's lock if this turn holds it."""
    await db.execute(f"DELETE FROM thread_locks WHERE {_KEY} AND owner = ?", (*key_params(key), event_id))


async def request_stop(
    db: aiosqlite.Connection, key: ThreadKey, event_id: str, by: str, author_id: str, admin: bool
) -> str | None:
    """Mark the thread's started turn to stop if `author_id` asked it or `admin`; return its asker.

    Call inside a transaction."""
    rows = list(
        await db.execute_fetchall(
            f"SELECT user_id FROM turns WHERE event_id = ? AND {_KEY} AND state = 'started'",
            (event_id, *key_params(key)),
        )
    )
    if not rows:
        return None
    asker = str(rows[0][0])
    if admin or asker == author_id:
        await db.execute("UPDATE turns SET stop_by = ? WHERE event_id = ?", (by, event_id))
    return asker


async def stop_requests(db: aiosqlite.Connection, owner: str) -> list[tuple[str, str]]:
    """(event id, who pressed Stop) of the started turns of `owner` marked to stop."""
    rows = await db.execute_fetchall(
        "SELECT event_id, stop_by FROM turns WHERE state = 'started' AND owner = ? AND stop_by IS NOT NULL",
        (owner,),
    )
    return [(str(r[0]), str(r[1])) for r in rows]
