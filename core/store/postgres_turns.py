"""PostgreSQL SQL for turn leases: a started turn names its replica and holds a lease it renews.

Each call is ONE statement, so each decision is atomic across replicas under READ COMMITTED: an UPDATE
that waits for a row another replica is changing re-checks its WHERE on the committed version, so of
a renewal and a takeover racing for one turn exactly one wins, and two survivors never both take it.
The thread's lock row (thread_locks, owner = the turn's event id) is taken with the turn's start (one
call of codebot_start_turn, migration 004, which also queues the workspace ticket) and renewed with
its lease, so an uncontended turn pays no extra round trip for the lock or for entering the queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

from core.store.base import BeginOutcome, TurnBegin, TurnBegun, TurnStart
from core.store.postgres_history import RELAXED, Conn, key_params
from core.store.postgres_ledger import admission, int32, window_args
from core.store.postgres_threads import context
from core.types import ThreadKey

# A renewal needs no disk flush (RELAXED): one lost to a server crash leaves the lease at its previous
# end, still most of a lease away, and the next renewal extends it again.
_RENEW = f"""
WITH t AS (
    UPDATE turns SET lease_until = $3 FROM {RELAXED}
    WHERE event_id = $1 AND owner = $2 AND state = 'started'
    RETURNING platform, workspace, channel, thread
), l AS (
    UPDATE thread_locks SET lease_until = $3 FROM t
    WHERE thread_locks.platform = t.platform AND thread_locks.workspace = t.workspace
      AND thread_locks.channel = t.channel AND thread_locks.thread = t.thread
      AND thread_locks.owner = $1
    RETURNING 1
)
SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM l)
"""

_TAKE_OVER = """
WITH t AS (
    UPDATE turns SET state = 'abandoned', reason = $2, finished_at = $1, owner = NULL, lease_until = NULL
    WHERE state = 'started' AND ($3 OR lease_until IS NULL OR lease_until <= $1)
      AND ($4::text[] IS NULL OR platform = ANY ($4::text[]))
    RETURNING platform, workspace, channel, thread, event_id, question, started_at
), l AS (
    DELETE FROM thread_locks USING t
    WHERE thread_locks.platform = t.platform AND thread_locks.workspace = t.workspace
      AND thread_locks.channel = t.channel AND thread_locks.thread = t.thread
      AND thread_locks.owner = t.event_id
)
SELECT platform, workspace, channel, thread, event_id, question FROM t ORDER BY started_at, event_id
"""


async def start_turn_leased(
    db: Conn,
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
    row = await db.fetchrow(
        "SELECT won, ticket, place FROM codebot_start_turn($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        event_id, *key_params(key), user_id, question, now, owner, lease_s,
        None if cap is None else max(int32(cap), 1),
    )  # fmt: skip
    return _start(row[0], row[1], row[2])


def _start(won: object, ticket: int | None, place: int | None) -> TurnStart:
    return TurnStart(bool(won)) if ticket is None else TurnStart(bool(won), int(ticket), int(place or 0))


_OUTCOMES: dict[str, BeginOutcome] = {o: o for o in get_args(BeginOutcome)}
_BEGIN = "SELECT * FROM codebot_begin_turn({})".format(", ".join(f"${n}" for n in range(1, 25)))


async def begin_turn(db: Conn, b: TurnBegin) -> TurnBegun:
    """Claim, admit and start a question in one call of codebot_begin_turn (migration 008)."""
    if b.owner is None:
        raise ValueError("a turn on PostgreSQL always holds a lease: begin_turn needs an owner")
    c = b.check
    windows = (None,) * 9 if c is None else window_args(c)
    row = await db.fetchrow(
        _BEGIN,
        b.event_id, *key_params(b.key), b.user_id, b.question, b.now, b.ttl_s, b.limits_version,
        c is not None, *windows, b.owner, b.lease_s, None if b.cap is None else max(int32(b.cap), 1),
        None if b.history_limit is None else int32(b.history_limit),
    )  # fmt: skip
    outcome = _OUTCOMES[row[0]]
    if outcome == "refused" and c is not None:
        return TurnBegun(outcome, admission(c, row[1], row[2], row[3]))
    if outcome == "started":
        read = None if row[7] is None else context(row[7], row[8], row[9])
        return TurnBegun(outcome, start=_start(row[4], row[5], row[6]), context=read)
    return TurnBegun(outcome)


async def renew_turn(db: Conn, event_id: str, owner: str, now: float, lease_s: float) -> tuple[str, bool]:
    """Extend the turn's lease and its thread lock's: ("renewed" | "finished" | "lost", thread lock ours)."""
    row = await db.fetchrow(_RENEW, event_id, owner, now + lease_s)
    if row[0]:
        return "renewed", bool(row[1])
    # A second statement, so its snapshot includes a takeover the UPDATE above waited for. A takeover
    # clears the owner; a turn this replica committed or abandoned itself keeps it.
    mine = await db.fetchval("SELECT owner = $2 FROM turns WHERE event_id = $1", event_id, owner)
    return ("finished" if mine else "lost"), False


async def take_over_turns(
    db: Conn, now: float, reason: str, expired_only: bool = True, platforms: Sequence[str] | None = None
) -> list[tuple[ThreadKey, str, str]]:
    """Abandon started turns whose lease ended (or all of them) and free their threads; return them."""
    rows = await db.fetch(
        _TAKE_OVER, now, reason, not expired_only, None if platforms is None else list(platforms)
    )
    return [(ThreadKey(r[0], r[1], r[2], r[3]), r[4], r[5]) for r in rows]


async def release_thread(db: Conn, key: ThreadKey, event_id: str) -> None:
    """Free the thread's lock if this turn holds it."""
    await db.execute(
        """DELETE FROM thread_locks
           WHERE platform = $1 AND workspace = $2 AND channel = $3 AND thread = $4 AND owner = $5""",
        *key_params(key),
        event_id,
    )


_REQUEST_STOP = """
WITH t AS (
    SELECT user_id FROM turns
    WHERE event_id = $1 AND platform = $2 AND workspace = $3 AND channel = $4 AND thread = $5
      AND state = 'started'
), s AS (
    UPDATE turns SET stop_by = $6
    WHERE event_id = $1 AND state = 'started' AND ($8 OR user_id = $7) AND EXISTS (SELECT FROM t)
)
SELECT user_id FROM t
"""


async def request_stop(
    db: Conn, key: ThreadKey, event_id: str, by: str, author_id: str, admin: bool
) -> str | None:
    """Mark the thread's started turn to stop if `author_id` asked it or `admin`; return its asker."""
    asker = await db.fetchval(_REQUEST_STOP, event_id, *key_params(key), by, author_id, admin)
    return None if asker is None else str(asker)


async def stop_requests(db: Conn, owner: str) -> list[tuple[str, str]]:
    """(event id, who pressed Stop) of the started turns of `owner` marked to stop."""
    rows = await db.fetch(
        "SELECT event_id, stop_by FROM turns WHERE state = 'started' AND owner = $1 AND stop_by IS NOT NULL",
        owner,
    )
    return [(str(r[0]), str(r[1])) for r in rows]
