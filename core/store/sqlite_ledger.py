"""SQL for the audit trail, usage totals, per-workspace limits and rate-limit buckets.

Functions take a connection; the caller (SQLiteStore) owns locking and transactions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import aiosqlite

from core.store.audit_rows import AUDIT_COLUMNS, audit_record
from core.store.base import (
    AuditRecord,
    LimitChange,
    LimitValues,
    RunAdmission,
    RunCheck,
    SlotResult,
    UsageRecord,
    UsageTotals,
    Workspace,
)
from core.store.sqlite_history import SWEEP_ROWS, key_params

_NO_ID = 2**63 - 1  # "before no id": larger than any rowid, so one indexed query serves both cases


async def insert_audits(
    db: aiosqlite.Connection, audits: Iterable[AuditRecord], event_id: str | None
) -> None:
    """Insert audit records (their `id` is ignored; the store assigns one)."""
    await db.executemany(
        """INSERT INTO audit (platform, workspace, channel, thread, user_id, at, step, code, allowed, risk,
                              reasons, outcome, exit_code, duration_ms, event_id)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            (*key_params(a.key), a.user_id, a.at, a.step, a.code, int(a.allowed), a.risk, a.reasons,
             a.outcome, a.exit_code, a.duration_ms, event_id)
            for a in audits
        ],
    )  # fmt: skip


async def audit(
    db: aiosqlite.Connection, ws: Workspace, limit: int = 20, before_id: int | None = None
) -> list[AuditRecord]:
    """Return a workspace's audit records, newest first, optionally only those older than before_id."""
    rows = await db.execute_fetchall(
        f"""SELECT {AUDIT_COLUMNS} FROM audit WHERE platform = ? AND workspace = ? AND id < ?
            ORDER BY id DESC LIMIT ?""",
        (ws.platform, ws.id, _NO_ID if before_id is None else before_id, max(limit, 0)),
    )
    return [audit_record(row) for row in rows]


async def audit_entry(db: aiosqlite.Connection, ws: Workspace, audit_id: int) -> AuditRecord | None:
    """Return one audit record if it belongs to this workspace."""
    rows = await db.execute_fetchall(
        f"SELECT {AUDIT_COLUMNS} FROM audit WHERE id = ? AND platform = ? AND workspace = ?",
        (audit_id, ws.platform, ws.id),
    )
    return next((audit_record(row) for row in rows), None)


async def export_audit(db: aiosqlite.Connection, ws: Workspace | None) -> list[AuditRecord]:
    """Return audit records oldest first, of one workspace or of all."""
    if ws is None:
        rows = await db.execute_fetchall(f"SELECT {AUDIT_COLUMNS} FROM audit ORDER BY id")
    else:
        rows = await db.execute_fetchall(
            f"SELECT {AUDIT_COLUMNS} FROM audit WHERE platform = ? AND workspace = ? ORDER BY id",
            (ws.platform, ws.id),
        )
    return [audit_record(row) for row in rows]


async def add_usage(db: aiosqlite.Connection, u: UsageRecord) -> None:
    """Insert one usage row."""
    await db.execute(
        """INSERT INTO usage (platform, workspace, user_id, at, questions, runs, refusals, tokens, sandbox_ms)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (u.workspace.platform, u.workspace.id, u.user_id, u.at, u.questions, u.runs, u.refusals, u.tokens,
         u.sandbox_ms),
    )  # fmt: skip


async def usage(
    db: aiosqlite.Connection, ws: Workspace, since: float, user_id: str | None = None
) -> UsageTotals:
    """Sum usage rows at or after `since` for the workspace, or for one user in it."""
    sums = "COALESCE(SUM(questions), 0), COALESCE(SUM(runs), 0), COALESCE(SUM(refusals), 0), " + (
        "COALESCE(SUM(tokens), 0), COALESCE(SUM(sandbox_ms), 0.0)"
    )
    if user_id is None:
        sql = f"SELECT {sums} FROM usage WHERE platform = ? AND workspace = ? AND at >= ?"
        params: tuple[Any, ...] = (ws.platform, ws.id, since)
    else:
        sql = f"SELECT {sums} FROM usage WHERE platform = ? AND workspace = ? AND user_id = ? AND at >= ?"
        params = (ws.platform, ws.id, user_id, since)
    (row,) = await db.execute_fetchall(sql, params)
    return UsageTotals(int(row[0]), int(row[1]), int(row[2]), int(row[3]), float(row[4]))


# The id of the workspace's newest limit change (0 before any): what LimitValues.version holds.
_VERSION = "SELECT COALESCE(MAX(id), 0) AS version FROM limit_changes WHERE platform = ? AND workspace = ?"


async def limits_version(db: aiosqlite.Connection, ws: Workspace) -> int:
    """The workspace's limits version (LimitValues.version)."""
    rows = await db.execute_fetchall(_VERSION, (ws.platform, ws.id))
    return int(next(iter(rows))[0])


async def limits(db: aiosqlite.Connection, ws: Workspace) -> LimitValues:
    """Return the values set for a workspace, by limit name, and their version, in one statement."""
    rows = await db.execute_fetchall(
        f"""SELECT v.version, l.name, l.value
            FROM ({_VERSION}) AS v LEFT JOIN limits AS l ON l.platform = ? AND l.workspace = ?
            ORDER BY l.name""",
        (ws.platform, ws.id, ws.platform, ws.id),
    )
    rows = list(rows)
    return LimitValues({r[1]: r[2] for r in rows if r[1] is not None}, int(rows[0][0]))


async def set_limit(db: aiosqlite.Connection, change: LimitChange) -> None:
    """Store the new value and log the change, recording the stored old value when there is one."""
    ws = change.workspace
    rows = await db.execute_fetchall(
        "SELECT value FROM limits WHERE platform = ? AND workspace = ? AND name = ?",
        (ws.platform, ws.id, change.name),
    )
    # The stored value wins over the caller's idea of it (another admin may have changed it meanwhile);
    # with nothing stored, the caller's `old` is the default it was showing.
    old = next((row[0] for row in rows), change.old)
    await db.execute(
        """INSERT INTO limits (platform, workspace, name, value) VALUES (?, ?, ?, ?)
           ON CONFLICT (platform, workspace, name) DO UPDATE SET value = excluded.value""",
        (ws.platform, ws.id, change.name, change.new),
    )
    await db.execute(
        """INSERT INTO limit_changes (platform, workspace, name, old, new, by, at)
           VALUES (?, ?, ?, ?, ?, ?, ?)""",
        (ws.platform, ws.id, change.name, old, change.new, change.by, change.at),
    )


async def limit_changes(db: aiosqlite.Connection, ws: Workspace, limit: int = 20) -> list[LimitChange]:
    """Return a workspace's limit changes, newest first."""
    rows = await db.execute_fetchall(
        """SELECT name, old, new, by, at FROM limit_changes WHERE platform = ? AND workspace = ?
           ORDER BY id DESC LIMIT ?""",
        (ws.platform, ws.id, max(limit, 0)),
    )
    return [LimitChange(ws, r[0], r[1], r[2], r[3], r[4]) for r in rows]


async def sweep_buckets(db: aiosqlite.Connection, now: float) -> None:
    """Drop bucket rows that have left their window, a bounded batch at a time."""
    await db.execute(
        "DELETE FROM buckets WHERE id IN (SELECT id FROM buckets WHERE expires_at <= ? LIMIT ?)",
        (now, SWEEP_ROWS),
    )


async def _window(
    db: aiosqlite.Connection, bucket: str, window_s: float, now: float
) -> tuple[int, float | None]:
    """Return the total in the window and the time of its oldest row."""
    (row,) = await db.execute_fetchall(
        "SELECT COALESCE(SUM(amount), 0), MIN(at) FROM buckets WHERE bucket = ? AND at > ?",
        (bucket, now - window_s),
    )
    return int(row[0]), row[1]


async def take_slot(
    db: aiosqlite.Connection, bucket: str, limit: int, window_s: float, now: float
) -> SlotResult:
    """Count one use if the window holds fewer than `limit`.

    The check and the insert are one statement, so two callers racing for the last slot cannot both
    win, with no BEGIN/COMMIT round trips. The counts reported afterwards are a separate read.
    """
    granted = False
    if limit > 0:
        rows = await db.execute_fetchall(
            """INSERT INTO buckets (bucket, at, amount, expires_at)
               SELECT ?, ?, 1, ?
               WHERE (SELECT COALESCE(SUM(amount), 0) FROM buckets WHERE bucket = ? AND at > ?) < ?
               RETURNING 1""",
            (bucket, now, now + window_s, bucket, now - window_s, limit),
        )
        granted = bool(list(rows))
    used, oldest = await _window(db, bucket, window_s, now)
    resets_at = float(now if oldest is None else oldest) + window_s
    return SlotResult(granted=granted, used=used, limit=limit, resets_at=resets_at)


async def add(db: aiosqlite.Connection, bucket: str, amount: int, window_s: float, now: float) -> None:
    """Insert one bucket row that counts until now + window_s."""
    await db.execute(
        "INSERT INTO buckets (bucket, at, amount, expires_at) VALUES (?, ?, ?, ?)",
        (bucket, now, amount, now + window_s),
    )


async def bucket_total(db: aiosqlite.Connection, bucket: str, window_s: float, now: float) -> int:
    """Return the sum of a bucket's amounts inside the window ending at `now`."""
    total, _ = await _window(db, bucket, window_s, now)
    return total


async def admit_run(db: aiosqlite.Connection, check: RunCheck) -> RunAdmission:
    """Check and count a question's windows, in the order RunCheck gives; call inside a transaction."""
    t, w, u = check.tokens, check.workspace, check.user
    if await bucket_total(db, t.bucket, t.window_s, check.now) >= t.limit:
        return RunAdmission("tokens")
    if await bucket_total(db, w.bucket, w.window_s, check.now) >= w.limit:
        peek = await take_slot(db, w.bucket, 0, w.window_s, check.now)  # a limit of 0 counts nothing
        return RunAdmission("workspace", dataclasses.replace(peek, limit=w.limit))
    user = await take_slot(db, u.bucket, u.limit, u.window_s, check.now)
    if not user.granted:
        return RunAdmission("user", user)
    workspace = await take_slot(db, w.bucket, w.limit, w.window_s, check.now)
    return RunAdmission(None if workspace.granted else "workspace", None if workspace.granted else workspace)
