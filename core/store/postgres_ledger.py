"""PostgreSQL SQL for the audit trail, usage totals, per-workspace limits and rate-limit buckets.

Functions take a connection; the caller (PostgresStore) owns transactions.
"""

from __future__ import annotations

from core.store.audit_rows import AUDIT_COLUMNS, audit_record
from core.store.base import (
    AuditRecord,
    LimitChange,
    LimitValues,
    RunAdmission,
    RunCheck,
    RunRefusal,
    SlotResult,
    UsageRecord,
    UsageTotals,
    Workspace,
)
from core.store.postgres_history import RELAXED, SWEEP_ROWS, Conn

_NO_ID = 2**63 - 1  # "before no id": larger than any identity value


async def audit(db: Conn, ws: Workspace, limit: int = 20, before_id: int | None = None) -> list[AuditRecord]:
    """Return a workspace's audit records, newest first, optionally only those older than before_id."""
    rows = await db.fetch(
        f"""SELECT {AUDIT_COLUMNS} FROM audit WHERE platform = $1 AND workspace = $2 AND id < $3
            ORDER BY id DESC LIMIT $4""",
        ws.platform,
        ws.id,
        _NO_ID if before_id is None else before_id,
        max(limit, 0),
    )
    return [audit_record(row) for row in rows]


async def audit_entry(db: Conn, ws: Workspace, audit_id: int) -> AuditRecord | None:
    """Return one audit record if it belongs to this workspace."""
    if not -_NO_ID <= audit_id <= _NO_ID:  # outside BIGINT: no such row, and no driver error either
        return None
    row = await db.fetchrow(
        f"SELECT {AUDIT_COLUMNS} FROM audit WHERE id = $1 AND platform = $2 AND workspace = $3",
        audit_id,
        ws.platform,
        ws.id,
    )
    return None if row is None else audit_record(row)


async def export_audit(db: Conn, ws: Workspace | None) -> list[AuditRecord]:
    """Return audit records oldest first, of one workspace or of all."""
    if ws is None:
        rows = await db.fetch(f"SELECT {AUDIT_COLUMNS} FROM audit ORDER BY id")
    else:
        rows = await db.fetch(
            f"SELECT {AUDIT_COLUMNS} FROM audit WHERE platform = $1 AND workspace = $2 ORDER BY id",
            ws.platform,
            ws.id,
        )
    return [audit_record(row) for row in rows]


async def add_usage(db: Conn, u: UsageRecord) -> None:
    """Insert one usage row."""
    await db.execute(
        """INSERT INTO usage (platform, workspace, user_id, at, questions, runs, refusals, tokens, sandbox_ms)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        u.workspace.platform, u.workspace.id, u.user_id, u.at, u.questions, u.runs, u.refusals, u.tokens,
        u.sandbox_ms,
    )  # fmt: skip


async def usage(db: Conn, ws: Workspace, since: float, user_id: str | None = None) -> UsageTotals:
    """Sum usage rows at or after `since` for the workspace, or for one user in it."""
    sums = "COALESCE(SUM(questions), 0), COALESCE(SUM(runs), 0), COALESCE(SUM(refusals), 0), " + (
        "COALESCE(SUM(tokens), 0), COALESCE(SUM(sandbox_ms), 0.0)"
    )
    if user_id is None:
        row = await db.fetchrow(
            f"SELECT {sums} FROM usage WHERE platform = $1 AND workspace = $2 AND at >= $3",
            ws.platform,
            ws.id,
            since,
        )
    else:
        row = await db.fetchrow(
            f"""SELECT {sums} FROM usage
                WHERE platform = $1 AND workspace = $2 AND user_id = $3 AND at >= $4""",
            ws.platform,
            ws.id,
            user_id,
            since,
        )
    return UsageTotals(int(row[0]), int(row[1]), int(row[2]), int(row[3]), float(row[4]))


async def limits(db: Conn, ws: Workspace) -> LimitValues:
    """Return the values set for a workspace, by limit name, and their version, in one snapshot."""
    row = await db.fetchrow(
        """SELECT (SELECT COALESCE(max(id), 0) FROM limit_changes WHERE platform = $1 AND workspace = $2),
                  array_agg(name ORDER BY name), array_agg(value ORDER BY name)
           FROM limits WHERE platform = $1 AND workspace = $2""",
        ws.platform,
        ws.id,
    )
    return LimitValues(dict(zip(row[1] or (), row[2] or (), strict=True)), int(row[0]))


async def set_limit(db: Conn, change: LimitChange) -> None:
    """Store the new value and log the change with the stored old value; call inside a transaction.

    A transaction lock per (workspace, name) makes concurrent changes of one limit take turns, so each
    change log entry's `old` is the value the previous change stored.
    """
    ws = change.workspace
    await db.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        f"codebot.limit:{ws.platform}:{ws.id}:{change.name}",
    )
    stored = await db.fetchval(
        "SELECT value FROM limits WHERE platform = $1 AND workspace = $2 AND name = $3",
        ws.platform,
        ws.id,
        change.name,
    )
    old = change.old if stored is None else stored
    await db.execute(
        """INSERT INTO limits (platform, workspace, name, value) VALUES ($1, $2, $3, $4)
           ON CONFLICT (platform, workspace, name) DO UPDATE SET value = excluded.value""",
        ws.platform,
        ws.id,
        change.name,
        change.new,
    )
    await db.execute(
        """INSERT INTO limit_changes (platform, workspace, name, old, new, by, at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        ws.platform, ws.id, change.name, old, change.new, change.by, change.at,
    )  # fmt: skip


async def limit_changes(db: Conn, ws: Workspace, limit: int = 20) -> list[LimitChange]:
    """Return a workspace's limit changes, newest first."""
    rows = await db.fetch(
        """SELECT name, old, new, by, at FROM limit_changes WHERE platform = $1 AND workspace = $2
           ORDER BY id DESC LIMIT $3""",
        ws.platform,
        ws.id,
        max(limit, 0),
    )
    return [LimitChange(ws, r[0], r[1], r[2], r[3], r[4]) for r in rows]


async def sweep_buckets(db: Conn, now: float) -> None:
    """Drop bucket rows that have left their window, a bounded batch at a time."""
    await db.execute(
        """DELETE FROM buckets WHERE id IN
           (SELECT id FROM buckets WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)""",
        now,
        SWEEP_ROWS,
    )


async def take_slot(db: Conn, bucket: str, limit: int, window_s: float, now: float) -> SlotResult:
    """Count one use if the window holds fewer than `limit`: one call of codebot_take_slot (see 001)."""
    row = await db.fetchrow(
        "SELECT granted, used, oldest FROM codebot_take_slot($1, $2, $3, $4)",
        bucket,
        max(min(limit, 2**31 - 1), 0),
        window_s,
        now,
    )
    oldest = row[2]
    resets_at = float(now if oldest is None else oldest) + window_s
    return SlotResult(granted=bool(row[0]), used=int(row[1]), limit=limit, resets_at=resets_at)


async def add(db: Conn, bucket: str, amount: int, window_s: float, now: float) -> None:
    """Insert one bucket row that counts until now + window_s."""
    # Without a disk flush of its own, as take_slot's (see codebot_take_slot in migration 001).
    await db.execute(
        f"INSERT INTO buckets (bucket, at, amount, expires_at) SELECT $1, $2, $3, $4 FROM {RELAXED}",
        bucket,
        now,
        amount,
        now + window_s,
    )


async def bucket_total(db: Conn, bucket: str, window_s: float, now: float) -> int:
    """Return the sum of a bucket's amounts inside the window ending at `now`."""
    total = await db.fetchval(
        "SELECT COALESCE(SUM(amount), 0) FROM buckets WHERE bucket = $1 AND at > $2",
        bucket,
        now - window_s,
    )
    return int(total)


async def admit_run(db: Conn, check: RunCheck) -> RunAdmission:
    """Check and count a question's windows in one call of codebot_admit_run (migration 006)."""
    row = await db.fetchrow(
        "SELECT refused, used, oldest FROM codebot_admit_run($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        *window_args(check),
        check.now,
    )
    return admission(check, row[0], row[1], row[2])


def window_args(check: RunCheck) -> tuple[object, ...]:
    """codebot_admit_run's nine window arguments: each window's bucket, limit and length."""
    t, w, u = check.tokens, check.workspace, check.user
    return (
        t.bucket, max(min(t.limit, 2**63 - 1), 0), t.window_s,
        w.bucket, int32(w.limit), w.window_s,
        u.bucket, int32(u.limit), u.window_s,
    )  # fmt: skip


_REFUSALS: dict[str, RunRefusal] = {"tokens": "tokens", "workspace": "workspace", "user": "user"}


def admission(check: RunCheck, refused: str | None, used: int | None, oldest: float | None) -> RunAdmission:
    """The RunAdmission of codebot_admit_run's answer (refused window, its count, its oldest slot)."""
    if refused is None:
        return RunAdmission(None)
    name = _REFUSALS[refused]
    if name == "tokens":
        return RunAdmission(name)
    window = check.user if name == "user" else check.workspace
    resets_at = float(check.now if oldest is None else oldest) + window.window_s
    return RunAdmission(name, SlotResult(False, int(used or 0), window.limit, resets_at))


def int32(n: int) -> int:
    """Clamp a count to PostgreSQL's INTEGER (a limit past it is as good as none)."""
    return max(min(n, 2**31 - 1), 0)
