"""commit_turn on PostgreSQL: a turn's history, audit, usage, charges and 'committed' mark in ONE statement.

One statement is one round trip and one transaction, so a turn costs a single commit, and it is atomic
by construction: a failing CHECK anywhere writes nothing. Every insert hangs off the `t` CTE, which
yields a row only if this call moved the turn to 'committed'. The turn's thread lock (owner = its
event id) and its workspace queue ticket are freed by the same statement. A concurrent commit of the
same event waits on that row's lock and then sees it committed, so it writes nothing (a retry is a no-op).
"""

from __future__ import annotations

from core.store.base import Turn
from core.store.postgres_history import Conn, key_params

_COMMIT = """
WITH t AS (
    INSERT INTO turns (event_id, platform, workspace, channel, thread, user_id, question, state,
                       reason, started_at, finished_at)
    VALUES ($1, $2, $3, $4, $5, $6, '', 'committed', NULL, $7, $7)
    ON CONFLICT (event_id) DO UPDATE SET state = 'committed', reason = NULL,
        finished_at = excluded.finished_at
    WHERE turns.state != 'committed'
    RETURNING 1
), c AS (
    INSERT INTO conversations (platform, workspace, channel, thread, created_at, updated_at, last_seq)
    SELECT $2, $3, $4, $5, $7, $7, cardinality($8::text[]) FROM t WHERE cardinality($8::text[]) > 0
    ON CONFLICT (platform, workspace, channel, thread) DO UPDATE
        SET updated_at = excluded.updated_at, last_seq = conversations.last_seq + excluded.last_seq
    RETURNING id, last_seq - cardinality($8::text[]) AS base
), m AS (
    INSERT INTO messages (conversation_id, seq, body)
    SELECT c.id, c.base + b.n, b.body FROM c, unnest($8::text[]) WITH ORDINALITY AS b (body, n)
), a AS (
    INSERT INTO audit (platform, workspace, channel, thread, user_id, at, step, code, allowed, risk,
                       reasons, outcome, exit_code, duration_ms, event_id)
    SELECT r.platform, r.workspace, r.channel, r.thread, r.user_id, r.at, r.step, r.code, r.allowed,
           r.risk, r.reasons, r.outcome, r.exit_code, r.duration_ms, $1
    FROM t, unnest($9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::float8[],
                   $15::int[], $16::text[], $17::int[], $18::text[], $19::text[], $20::text[],
                   $21::int[], $22::float8[])
         WITH ORDINALITY AS r (platform, workspace, channel, thread, user_id, at, step, code, allowed,
                               risk, reasons, outcome, exit_code, duration_ms, n)
    ORDER BY r.n
), l AS (
    DELETE FROM thread_locks
    WHERE platform = $2 AND workspace = $3 AND channel = $4 AND thread = $5 AND owner = $1
), u AS (
    INSERT INTO usage (platform, workspace, user_id, at, questions, runs, refusals, tokens, sandbox_ms)
    SELECT $23, $24, $25, $26, $27, $28, $29, $30, $31 FROM t
), b AS (
    INSERT INTO buckets (bucket, at, amount, expires_at)
    SELECT x.bucket, $26, x.amount, $26 + x.window_s
    FROM t, unnest($32::text[], $33::bigint[], $34::float8[]) AS x (bucket, amount, window_s)
), g AS (
    DELETE FROM gate_tickets WHERE id = $35
)
SELECT count(*) FROM t
"""


async def commit_turn(db: Conn, turn: Turn) -> bool:
    """Write the whole turn; return False (writing nothing) if it was already committed."""
    u, audits, charges = turn.usage, turn.audits, turn.charges
    columns = [
        [a.key.platform for a in audits], [a.key.workspace for a in audits],
        [a.key.channel for a in audits], [a.key.thread for a in audits], [a.user_id for a in audits],
        [a.at for a in audits], [a.step for a in audits], [a.code for a in audits],
        [int(a.allowed) for a in audits], [a.risk for a in audits], [a.reasons for a in audits],
        [a.outcome for a in audits], [a.exit_code for a in audits], [a.duration_ms for a in audits],
    ]  # fmt: skip
    written = await db.fetchval(
        _COMMIT,
        turn.event_id, *key_params(turn.key), u.user_id, u.at, list(turn.messages),
        *columns,
        u.workspace.platform, u.workspace.id, u.user_id, u.at, u.questions, u.runs, u.refusals, u.tokens,
        u.sandbox_ms,
        [c.bucket for c in charges], [c.amount for c in charges], [c.window_s for c in charges],
        turn.ticket,
    )  # fmt: skip
    return bool(written)
