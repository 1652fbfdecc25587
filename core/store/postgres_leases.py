"""PostgreSQL SQL for the leases replicas share: workspace queue tickets and per-thread locks.

Each call is one statement; gate_poll is one call of codebot_gate_poll (migration 002), which takes a
per-workspace transaction lock so admission decisions of racing replicas never interleave.
"""

from __future__ import annotations

from core.store.base import Workspace
from core.store.postgres_history import RELAXED, Conn, key_params
from core.types import ThreadKey


async def gate_enter(
    db: Conn, ws: Workspace, owner: str, cap: int, now: float, lease_s: float
) -> tuple[int, int]:
    """Queue a ticket at the back of the workspace's line and poll it: (ticket, 0 = running or position)."""
    row = await db.fetchrow(
        # A ticket lost to a server crash is queued again by its holder (gate_poll says it is gone).
        f"SELECT g.ticket, g.place FROM {RELAXED}, codebot_gate_enter($1, $2, $3, $4, $5, $6) AS g",
        ws.platform,
        ws.id,
        owner,
        _cap(cap),
        now,
        lease_s,
    )
    return int(row[0]), int(row[1])


def _cap(cap: int) -> int:
    return max(min(cap, 2**31 - 1), 1)


async def gate_poll(db: Conn, ticket: int, ws: Workspace, cap: int, now: float, lease_s: float) -> int | None:
    """Renew the ticket and admit it if a slot is free for it: 0 = running, N = position, None = gone."""
    position = await db.fetchval(
        # A renewal or admission lost to a server crash is redone by the next poll.
        f"SELECT codebot_gate_poll($1, $2, $3, $4, $5, $6) FROM {RELAXED}",
        ticket,
        ws.platform,
        ws.id,
        _cap(cap),
        now,
        lease_s,
    )
    return None if position is None else int(position)


async def gate_leave(db: Conn, ticket: int) -> None:
    """Give up the ticket, running or waiting."""
    # A release lost to a server crash frees the slot when the ticket's lease ends.
    await db.execute(f"DELETE FROM gate_tickets USING {RELAXED} WHERE id = $1", ticket)


async def gate_counts(db: Conn, ws: Workspace, now: float) -> tuple[int, int]:
    """Return (running, waiting) tickets of the workspace whose leases are live, across all replicas."""
    row = await db.fetchrow(
        """SELECT count(*) FILTER (WHERE state = 'running'), count(*) FILTER (WHERE state = 'waiting')
           FROM gate_tickets WHERE platform = $1 AND workspace = $2 AND lease_until > $3""",
        ws.platform,
        ws.id,
        now,
    )
    return int(row[0]), int(row[1])


async def lock_thread(db: Conn, key: ThreadKey, owner: str, now: float, lease_s: float) -> bool:
    """Take the thread's lock, or renew it if `owner` holds it; True if `owner` holds it now.

    ON CONFLICT waits for a racing taker's row and re-checks the WHERE on its committed version, so
    of any number of racing takers exactly one gets a free lock.
    """
    won = await db.fetchval(
        """INSERT INTO thread_locks (platform, workspace, channel, thread, owner, lease_until)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (platform, workspace, channel, thread) DO UPDATE
           SET owner = excluded.owner, lease_until = excluded.lease_until
           WHERE thread_locks.owner = excluded.owner OR thread_locks.lease_until <= $7
           RETURNING 1""",
        *key_params(key),
        owner,
        now + lease_s,
        now,
    )
    return won is not None
