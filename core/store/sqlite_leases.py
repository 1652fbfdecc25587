"""SQL for the leases replicas share on SQLite: workspace queue tickets and per-thread locks.

gate_poll runs several statements; the caller wraps it in BEGIN IMMEDIATE, which serialises it with
every other writer of the file, so admission decisions never interleave.
"""

from __future__ import annotations

import aiosqlite

from core.store.base import Workspace
from core.store.sqlite_history import key_params
from core.types import ThreadKey


async def gate_enter(
    db: aiosqlite.Connection, ws: Workspace, owner: str, cap: int, now: float, lease_s: float
) -> tuple[int, int]:
    """Queue a ticket at the back of the workspace's line and poll it: (ticket, 0 = running or position)."""
    rows = await db.execute_fetchall(
        """INSERT INTO gate_tickets (platform, workspace, owner, state, lease_until)
           VALUES (?, ?, ?, 'waiting', ?) RETURNING id""",
        (ws.platform, ws.id, owner, now + lease_s),
    )
    ticket = int(next(iter(rows))[0])
    position = await gate_poll(db, ticket, ws, cap, now, lease_s)
    assert position is not None  # just inserted with a live lease, inside the same transaction
    return ticket, position


async def gate_poll(
    db: aiosqlite.Connection, ticket: int, ws: Workspace, cap: int, now: float, lease_s: float
) -> int | None:
    """Renew the ticket and admit it if a slot is free for it: 0 = running, N = position, None = gone."""
    await db.execute(
        "DELETE FROM gate_tickets WHERE platform = ? AND workspace = ? AND lease_until <= ?",
        (ws.platform, ws.id, now),
    )
    rows = list(
        await db.execute_fetchall(
            "UPDATE gate_tickets SET lease_until = ? WHERE id = ? RETURNING state", (now + lease_s, ticket)
        )
    )
    if not rows:
        return None
    if rows[0][0] == "running":
        return 0
    ((running, position),) = await db.execute_fetchall(
        """SELECT count(*) FILTER (WHERE state = 'running'),
                  count(*) FILTER (WHERE state = 'waiting' AND id < ?) + 1
           FROM gate_tickets WHERE platform = ? AND workspace = ?""",
        (ticket, ws.platform, ws.id),
    )
    if position <= max(cap, 1) - running:  # a cap below one still lets one turn run
        await db.execute("UPDATE gate_tickets SET state = 'running' WHERE id = ?", (ticket,))
        return 0
    return int(position)


async def gate_leave(db: aiosqlite.Connection, ticket: int) -> None:
    """Give up the ticket, running or waiting."""
    await db.execute("DELETE FROM gate_tickets WHERE id = ?", (ticket,))


async def gate_counts(db: aiosqlite.Connection, ws: Workspace, now: float) -> tuple[int, int]:
    """Return (running, waiting) tickets of the workspace whose leases are live, across all replicas."""
    ((running, waiting),) = await db.execute_fetchall(
        """SELECT count(*) FILTER (WHERE state = 'running'), count(*) FILTER (WHERE state = 'waiting')
           FROM gate_tickets WHERE platform = ? AND workspace = ? AND lease_until > ?""",
        (ws.platform, ws.id, now),
    )
    return int(running), int(waiting)


async def lock_thread(
    db: aiosqlite.Connection, key: ThreadKey, owner: str, now: float, lease_s: float
) -> bool:
    """Take the thread's lock, or renew it if `owner` holds it; True if `owner` holds it now.

    One conditional upsert: a live lease of another owner makes the WHERE false and nothing changes.
    """
    rows = await db.execute_fetchall(
        """INSERT INTO thread_locks (platform, workspace, channel, thread, owner, lease_until)
           VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (platform, workspace, channel, thread) DO UPDATE
           SET owner = excluded.owner, lease_until = excluded.lease_until
           WHERE thread_locks.owner = excluded.owner OR thread_locks.lease_until <= ?
           RETURNING 1""",
        (*key_params(key), owner, now + lease_s, now),
    )
    return bool(list(rows))
