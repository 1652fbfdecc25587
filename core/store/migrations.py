"""Ordered, named schema migrations for both backends, and the SQLite runner that applies them.

One list of steps serves SQLite and PostgreSQL: a step's `statements` are SQLite's, and its `postgres`
statements replace them where the dialects differ (types, identity columns, functions); a step without
them runs the same SQL on both. Append new migrations at the end and never edit one that has shipped:
databases record the names they have applied and only run the ones they lack.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import aiosqlite

# Written to the file header so a foreign SQLite file is not mistaken for ours ("cbot" in ASCII).
APPLICATION_ID = 0x63626F74


class ForeignDatabaseError(Exception):
    """The file is a valid SQLite database that codebot did not create."""


class NewerDatabaseError(Exception):
    """The database records a migration this code does not know: a newer codebot wrote it."""


@dataclass(frozen=True)
class Migration:
    name: str
    statements: tuple[str, ...]  # SQLite's, run one by one: executescript would commit our transaction
    postgres: tuple[str, ...] | None = None  # PostgreSQL's where it differs; None = the same statements

    def for_postgres(self) -> tuple[str, ...]:
        """Return the statements PostgreSQL runs for this step."""
        return self.statements if self.postgres is None else self.postgres


_INITIAL = (
    """CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        platform TEXT NOT NULL, workspace TEXT NOT NULL, channel TEXT NOT NULL, thread TEXT NOT NULL,
        created_at REAL NOT NULL, updated_at REAL NOT NULL,
        UNIQUE (platform, workspace, channel, thread))""",
    """CREATE TABLE messages (
        conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (conversation_id, seq)) WITHOUT ROWID""",
    """CREATE TABLE events (
        platform TEXT NOT NULL, event_id TEXT NOT NULL,
        claimed_at REAL NOT NULL, expires_at REAL NOT NULL,
        PRIMARY KEY (platform, event_id)) WITHOUT ROWID""",
    "CREATE INDEX events_expiry ON events (expires_at)",
    """CREATE TABLE turns (
        event_id TEXT PRIMARY KEY,
        platform TEXT NOT NULL, workspace TEXT NOT NULL, channel TEXT NOT NULL, thread TEXT NOT NULL,
        user_id TEXT NOT NULL, question TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('started', 'committed', 'abandoned')),
        reason TEXT, started_at REAL NOT NULL, finished_at REAL)""",
    "CREATE INDEX turns_open ON turns (started_at) WHERE state = 'started'",
    "CREATE INDEX turns_finished ON turns (finished_at) WHERE state != 'started'",
    """CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        platform TEXT NOT NULL, workspace TEXT NOT NULL, channel TEXT NOT NULL, thread TEXT NOT NULL,
        user_id TEXT NOT NULL, at REAL NOT NULL,
        step INTEGER NOT NULL CHECK (step >= 0),
        code TEXT NOT NULL,
        allowed INTEGER NOT NULL CHECK (allowed IN (0, 1)),
        risk TEXT NOT NULL, reasons TEXT NOT NULL, outcome TEXT NOT NULL,
        exit_code INTEGER,
        duration_ms REAL NOT NULL CHECK (duration_ms >= 0),
        event_id TEXT)""",
    "CREATE INDEX audit_workspace ON audit (platform, workspace, id)",
    # One row per turn; the covering indexes let usage() sum a week without touching the table.
    """CREATE TABLE usage (
        id INTEGER PRIMARY KEY,
        platform TEXT NOT NULL, workspace TEXT NOT NULL, user_id TEXT NOT NULL, at REAL NOT NULL,
        questions INTEGER NOT NULL, runs INTEGER NOT NULL, refusals INTEGER NOT NULL,
        tokens INTEGER NOT NULL, sandbox_ms REAL NOT NULL)""",
    """CREATE INDEX usage_workspace ON usage
        (platform, workspace, at, questions, runs, refusals, tokens, sandbox_ms)""",
    """CREATE INDEX usage_user ON usage
        (platform, workspace, user_id, at, questions, runs, refusals, tokens, sandbox_ms)""",
    """CREATE TABLE limits (
        platform TEXT NOT NULL, workspace TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
        PRIMARY KEY (platform, workspace, name)) WITHOUT ROWID""",
    """CREATE TABLE limit_changes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        platform TEXT NOT NULL, workspace TEXT NOT NULL, name TEXT NOT NULL,
        old TEXT, new TEXT NOT NULL, by TEXT NOT NULL, at REAL NOT NULL)""",
    "CREATE INDEX limit_changes_workspace ON limit_changes (platform, workspace, id)",
    # expires_at lets one sweep drop stale rows of every bucket without knowing each bucket's window.
    """CREATE TABLE buckets (
        id INTEGER PRIMARY KEY,
        bucket TEXT NOT NULL, at REAL NOT NULL, amount INTEGER NOT NULL, expires_at REAL NOT NULL)""",
    "CREATE INDEX buckets_window ON buckets (bucket, at, amount)",
    "CREATE INDEX buckets_expiry ON buckets (expires_at)",
)

# The same tables for PostgreSQL: timestamps are DOUBLE PRECISION (its REAL is only 4 bytes), ids are
# identity columns, and counters that sum tokens are BIGINT. conversations.last_seq lets one statement
# append a turn's messages: ON CONFLICT updates the row's latest committed version, whatever the
# statement's snapshot saw, so racing appends to one thread get consecutive, distinct numbers.
_INITIAL_POSTGRES = (
    """CREATE TABLE conversations (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        platform TEXT NOT NULL, workspace TEXT NOT NULL, channel TEXT NOT NULL, thread TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
        last_seq INTEGER NOT NULL DEFAULT 0,
        UNIQUE (platform, workspace, channel, thread))""",
    """CREATE TABLE messages (
        conversation_id BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (conversation_id, seq))""",
    """CREATE TABLE events (
        platform TEXT NOT NULL, event_id TEXT NOT NULL,
        claimed_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (platform, event_id))""",
    "CREATE INDEX events_expiry ON events (expires_at)",
    """CREATE TABLE turns (
        event_id TEXT PRIMARY KEY,
        platform TEXT NOT NULL, workspace TEXT NOT NULL, channel TEXT NOT NULL, thread TEXT NOT NULL,
        user_id TEXT NOT NULL, question TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('started', 'committed', 'abandoned')),
        reason TEXT, started_at DOUBLE PRECISION NOT NULL, finished_at DOUBLE PRECISION)""",
    "CREATE INDEX turns_open ON turns (started_at) WHERE state = 'started'",
    "CREATE INDEX turns_finished ON turns (finished_at) WHERE state != 'started'",
    "CREATE INDEX turns_thread ON turns (platform, workspace, channel, thread) WHERE state = 'started'",
    """CREATE TABLE audit (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        platform TEXT NOT NULL, workspace TEXT NOT NULL, channel TEXT NOT NULL, thread TEXT NOT NULL,
        user_id TEXT NOT NULL, at DOUBLE PRECISION NOT NULL,
        step INTEGER NOT NULL CHECK (step >= 0),
        code TEXT NOT NULL,
        allowed INTEGER NOT NULL CHECK (allowed IN (0, 1)),
        risk TEXT NOT NULL, reasons TEXT NOT NULL, outcome TEXT NOT NULL,
        exit_code INTEGER,
        duration_ms DOUBLE PRECISION NOT NULL CHECK (duration_ms >= 0),
        event_id TEXT)""",
    "CREATE INDEX audit_workspace ON audit (platform, workspace, id)",
    """CREATE TABLE usage (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        platform TEXT NOT NULL, workspace TEXT NOT NULL, user_id TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        questions INTEGER NOT NULL, runs INTEGER NOT NULL, refusals INTEGER NOT NULL,
        tokens BIGINT NOT NULL, sandbox_ms DOUBLE PRECISION NOT NULL)""",
    """CREATE INDEX usage_workspace ON usage (platform, workspace, at)
        INCLUDE (questions, runs, refusals, tokens, sandbox_ms)""",
    """CREATE INDEX usage_user ON usage (platform, workspace, user_id, at)
        INCLUDE (questions, runs, refusals, tokens, sandbox_ms)""",
    """CREATE TABLE limits (
        platform TEXT NOT NULL, workspace TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
        PRIMARY KEY (platform, workspace, name))""",
    """CREATE TABLE limit_changes (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        platform TEXT NOT NULL, workspace TEXT NOT NULL, name TEXT NOT NULL,
        old TEXT, new TEXT NOT NULL, by TEXT NOT NULL, at DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX limit_changes_workspace ON limit_changes (platform, workspace, id)",
    """CREATE TABLE buckets (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        bucket TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, amount BIGINT NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX buckets_window ON buckets (bucket, at) INCLUDE (amount)",
    "CREATE INDEX buckets_expiry ON buckets (expires_at)",
    # Under READ COMMITTED a statement's snapshot predates any lock it waits for, so "count the window,
    # then insert" cannot be one plain statement. This function takes a per-bucket transaction lock first;
    # its next query gets a fresh snapshot that includes every slot committed before the lock was granted.
    # One call, one round trip, and exactly `lim` winners however many replicas race.
    """CREATE FUNCTION codebot_take_slot(
            p_bucket TEXT, p_limit INTEGER, p_window DOUBLE PRECISION, p_now DOUBLE PRECISION,
            OUT granted BOOLEAN, OUT used BIGINT, OUT oldest DOUBLE PRECISION)
        LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
            -- A rate-limit count is not worth a disk flush per call: like SQLite's synchronous=NORMAL, a
            -- server crash may forget the last fraction of a second of counts, never history or claims.
            PERFORM set_config('synchronous_commit', 'off', true);
            granted := FALSE;
            IF p_limit > 0 THEN
                PERFORM pg_advisory_xact_lock(hashtextextended('codebot.bucket:' || p_bucket, 0));
                SELECT COALESCE(SUM(amount), 0) INTO used
                    FROM buckets WHERE bucket = p_bucket AND at > p_now - p_window;
                IF used < p_limit THEN
                    INSERT INTO buckets (bucket, at, amount, expires_at)
                        VALUES (p_bucket, p_now, 1, p_now + p_window);
                    granted := TRUE;
                END IF;
            END IF;
            SELECT COALESCE(SUM(amount), 0), MIN(at) INTO used, oldest
                FROM buckets WHERE bucket = p_bucket AND at > p_now - p_window;
        END $$""",
)

# Leases shared by replicas: the per-workspace queue (tickets in FIFO id order, 'waiting' or 'running')
# and per-thread locks. A lease its holder stops renewing (a dead replica) expires and is taken over.
_LEASES = (
    """CREATE TABLE gate_tickets (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        platform TEXT NOT NULL, workspace TEXT NOT NULL, owner TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('waiting', 'running')),
        lease_until REAL NOT NULL)""",
    "CREATE INDEX gate_tickets_queue ON gate_tickets (platform, workspace, id)",
    """CREATE TABLE thread_locks (
        platform TEXT NOT NULL, workspace TEXT NOT NULL, channel TEXT NOT NULL, thread TEXT NOT NULL,
        owner TEXT NOT NULL, lease_until REAL NOT NULL,
        PRIMARY KEY (platform, workspace, channel, thread)) WITHOUT ROWID""",
)

_LEASES_POSTGRES = (
    """CREATE TABLE gate_tickets (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        platform TEXT NOT NULL, workspace TEXT NOT NULL, owner TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('waiting', 'running')),
        lease_until DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX gate_tickets_queue ON gate_tickets (platform, workspace, id)",
    """CREATE TABLE thread_locks (
        platform TEXT NOT NULL, workspace TEXT NOT NULL, channel TEXT NOT NULL, thread TEXT NOT NULL,
        owner TEXT NOT NULL, lease_until DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (platform, workspace, channel, thread))""",
    # One call per poll: under a per-workspace transaction lock, drop dead tickets, renew this one, and
    # admit it if it is among the first (cap - running) waiters. Returns 0 = running, N = position in
    # the queue (1 = next), NULL = the ticket is gone (its lease expired).
    """CREATE FUNCTION codebot_gate_poll(
            p_ticket BIGINT, p_platform TEXT, p_workspace TEXT, p_cap INTEGER,
            p_now DOUBLE PRECISION, p_lease DOUBLE PRECISION)
        RETURNS INTEGER LANGUAGE plpgsql VOLATILE AS $$
        DECLARE
            v_state TEXT;
            v_running INTEGER;
            v_position INTEGER;
        BEGIN
            PERFORM pg_advisory_xact_lock(
                hashtextextended('codebot.gate:' || p_platform || ':' || p_workspace, 0));
            DELETE FROM gate_tickets
                WHERE platform = p_platform AND workspace = p_workspace AND lease_until <= p_now;
            UPDATE gate_tickets SET lease_until = p_now + p_lease WHERE id = p_ticket
                RETURNING state INTO v_state;
            IF v_state IS NULL THEN
                RETURN NULL;
            END IF;
            IF v_state = 'running' THEN
                RETURN 0;
            END IF;
            SELECT count(*) INTO v_running FROM gate_tickets
                WHERE platform = p_platform AND workspace = p_workspace AND state = 'running';
            SELECT count(*) + 1 INTO v_position FROM gate_tickets
                WHERE platform = p_platform AND workspace = p_workspace AND state = 'waiting'
                  AND id < p_ticket;
            IF v_position <= p_cap - v_running THEN
                UPDATE gate_tickets SET state = 'running' WHERE id = p_ticket;
                RETURN 0;
            END IF;
            RETURN v_position;
        END $$""",
    # Queue a ticket and poll it at once, so a turn that finds a free slot costs one round trip.
    """CREATE FUNCTION codebot_gate_enter(
            p_platform TEXT, p_workspace TEXT, p_owner TEXT, p_cap INTEGER,
            p_now DOUBLE PRECISION, p_lease DOUBLE PRECISION, OUT ticket BIGINT, OUT place INTEGER)
        LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
            INSERT INTO gate_tickets (platform, workspace, owner, state, lease_until)
                VALUES (p_platform, p_workspace, p_owner, 'waiting', p_now + p_lease)
                RETURNING id INTO ticket;
            place := codebot_gate_poll(ticket, p_platform, p_workspace, p_cap, p_now, p_lease);
        END $$""",
)

# Turn leases (issue 15): a started turn names the replica running it and holds a lease it renews, so a
# surviving replica can tell a dead one's turns from live ones. Rows from before have no lease, so they
# count as expired: no replica renews them.
_TURN_LEASES = (
    "ALTER TABLE turns ADD COLUMN owner TEXT",
    "ALTER TABLE turns ADD COLUMN lease_until REAL",
)

_TURN_LEASES_POSTGRES = ("ALTER TABLE turns ADD COLUMN owner TEXT, ADD COLUMN lease_until DOUBLE PRECISION",)

# A turn's start in one call on PostgreSQL: record it with its lease, take its thread's lock (owner =
# the event id) if free, and if it got the lock and a cap is given, queue its workspace ticket too. So
# neither the thread lock nor entering the workspace's queue costs a round trip of its own. (SQLite
# does the same in one transaction of several statements: nothing to create there.)
_START_TURN_POSTGRES = (
    """CREATE FUNCTION codebot_start_turn(
            p_event TEXT, p_platform TEXT, p_workspace TEXT, p_channel TEXT, p_thread TEXT,
            p_user TEXT, p_question TEXT, p_now DOUBLE PRECISION, p_owner TEXT,
            p_lease DOUBLE PRECISION, p_cap INTEGER,
            OUT won BOOLEAN, OUT ticket BIGINT, OUT place INTEGER)
        LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
            INSERT INTO turns (event_id, platform, workspace, channel, thread, user_id, question, state,
                               reason, started_at, finished_at, owner, lease_until)
                VALUES (p_event, p_platform, p_workspace, p_channel, p_thread, p_user, p_question,
                        'started', NULL, p_now, NULL, p_owner, p_now + p_lease)
                ON CONFLICT (event_id) DO UPDATE SET
                    platform = excluded.platform, workspace = excluded.workspace,
                    channel = excluded.channel, thread = excluded.thread, user_id = excluded.user_id,
                    question = excluded.question, state = 'started', reason = NULL,
                    started_at = excluded.started_at, finished_at = NULL, owner = excluded.owner,
                    lease_until = excluded.lease_until;
            INSERT INTO thread_locks (platform, workspace, channel, thread, owner, lease_until)
                VALUES (p_platform, p_workspace, p_channel, p_thread, p_event, p_now + p_lease)
                ON CONFLICT (platform, workspace, channel, thread) DO UPDATE
                SET owner = excluded.owner, lease_until = excluded.lease_until
                WHERE thread_locks.owner = excluded.owner OR thread_locks.lease_until <= p_now;
            won := FOUND;
            IF won AND p_cap IS NOT NULL THEN
                SELECT g.ticket, g.place INTO ticket, place
                    FROM codebot_gate_enter(p_platform, p_workspace, p_owner, p_cap, p_now, p_lease) AS g;
            END IF;
        END $$""",
)

# A thread's workspace (issue 14): its files and its kept Python state. `thread_workspaces.touched_at`
# is the last turn that used the workspace; the retention sweep deletes workspaces idle longer than
# CODEBOT_WORKSPACE_RETENTION_DAYS. `preview` (the first lines of a text file, bounded) is what the
# model is told each turn, so telling it never reads the bytes. The byte columns come last so that
# listing files reads the row's head and never the blob's overflow pages (SQLite) or TOAST (PostgreSQL).
_THREAD_FILES = (
    """CREATE TABLE thread_workspaces (
        platform TEXT NOT NULL, workspace TEXT NOT NULL, channel TEXT NOT NULL, thread TEXT NOT NULL,
        touched_at REAL NOT NULL,
        PRIMARY KEY (platform, workspace, channel, thread)) WITHOUT ROWID""",
    "CREATE INDEX thread_workspaces_idle ON thread_workspaces (touched_at)",
    """CREATE TABLE thread_files (
        platform TEXT NOT NULL, workspace TEXT NOT NULL, channel TEXT NOT NULL, thread TEXT NOT NULL,
        name TEXT NOT NULL,
        size INTEGER NOT NULL CHECK (size >= 0),
        sha256 TEXT NOT NULL,
        origin TEXT NOT NULL CHECK (origin IN ('attached', 'run')),
        created_at REAL NOT NULL, updated_at REAL NOT NULL,
        preview TEXT NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (platform, workspace, channel, thread, name))""",
    """CREATE TABLE thread_state (
        platform TEXT NOT NULL, workspace TEXT NOT NULL, channel TEXT NOT NULL, thread TEXT NOT NULL,
        size INTEGER NOT NULL CHECK (size >= 0),
        kept TEXT NOT NULL, dropped TEXT NOT NULL,
        updated_at REAL NOT NULL,
        blob BLOB NOT NULL,
        PRIMARY KEY (platform, workspace, channel, thread))""",
)

_THREAD_FILES_POSTGRES = (
    """CREATE TABLE thread_workspaces (
        platform TEXT NOT NULL, workspace TEXT NOT NULL, channel TEXT NOT NULL, thread TEXT NOT NULL,
        touched_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (platform, workspace, channel, thread))""",
    "CREATE INDEX thread_workspaces_idle ON thread_workspaces (touched_at)",
    """CREATE TABLE thread_files (
        platform TEXT NOT NULL, workspace TEXT NOT NULL, channel TEXT NOT NULL, thread TEXT NOT NULL,
        name TEXT NOT NULL,
        size BIGINT NOT NULL CHECK (size >= 0),
        sha256 TEXT NOT NULL,
        origin TEXT NOT NULL CHECK (origin IN ('attached', 'run')),
        created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
        preview TEXT NOT NULL,
        data BYTEA NOT NULL,
        PRIMARY KEY (platform, workspace, channel, thread, name))""",
    """CREATE TABLE thread_state (
        platform TEXT NOT NULL, workspace TEXT NOT NULL, channel TEXT NOT NULL, thread TEXT NOT NULL,
        size BIGINT NOT NULL CHECK (size >= 0),
        kept TEXT NOT NULL, dropped TEXT NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        blob BYTEA NOT NULL,
        PRIMARY KEY (platform, workspace, channel, thread))""",
)

# A question's admission in one call on PostgreSQL (issue 15, fewer round trips): the token quota, a
# peek at the workspace's window, then the user's and the workspace's slots through codebot_take_slot
# (its per-bucket locks, always user before workspace, so two admissions never wait on each other in a
# cycle). The same decisions, in the same order, as the four calls it replaces. (SQLite runs the same
# steps in one transaction: nothing to create there.)
_ADMIT_RUN_POSTGRES = (
    """CREATE FUNCTION codebot_admit_run(
            p_tokens TEXT, p_tokens_limit BIGINT, p_tokens_window DOUBLE PRECISION,
            p_ws TEXT, p_ws_limit INTEGER, p_ws_window DOUBLE PRECISION,
            p_user TEXT, p_user_limit INTEGER, p_user_window DOUBLE PRECISION, p_now DOUBLE PRECISION,
            OUT refused TEXT, OUT used BIGINT, OUT oldest DOUBLE PRECISION)
        LANGUAGE plpgsql VOLATILE AS $$
        DECLARE
            v_granted BOOLEAN;
        BEGIN
            SELECT COALESCE(SUM(amount), 0) INTO used
                FROM buckets WHERE bucket = p_tokens AND at > p_now - p_tokens_window;
            IF used >= p_tokens_limit THEN
                refused := 'tokens';
                RETURN;
            END IF;
            SELECT COALESCE(SUM(amount), 0) INTO used
                FROM buckets WHERE bucket = p_ws AND at > p_now - p_ws_window;
            IF used >= p_ws_limit THEN
                SELECT s.used, s.oldest INTO used, oldest
                    FROM codebot_take_slot(p_ws, 0, p_ws_window, p_now) s;
                refused := 'workspace';
                RETURN;
            END IF;
            SELECT s.granted, s.used, s.oldest INTO v_granted, used, oldest
                FROM codebot_take_slot(p_user, p_user_limit, p_user_window, p_now) s;
            IF NOT v_granted THEN
                refused := 'user';
                RETURN;
            END IF;
            SELECT s.granted, s.used, s.oldest INTO v_granted, used, oldest
                FROM codebot_take_slot(p_ws, p_ws_limit, p_ws_window, p_now) s;
            IF NOT v_granted THEN
                refused := 'workspace';
            END IF;
        END $$""",
)

# The Stop button across replicas (issue 15): whoever presses Stop on any replica marks the started turn;
# the replica that owns it polls for its marked turns and cancels them (core.lease). The marked turns
# are found through turns_open (started turns only), so the poll reads no finished rows.
_STOP_REQUESTS = ("ALTER TABLE turns ADD COLUMN stop_by TEXT",)

# A question's first call in one on PostgreSQL (issue 15, under 5 ms of store time per turn): the limits
# the caller decided with still current (the workspace's newest change id), the event's claim, its
# admission (codebot_admit_run), the turn's start with its lease (codebot_start_turn) and, when the start
# took the thread's lock and p_history is given, what the turn reads of its thread (codebot_thread_context,
# which thread_context calls too): in one transaction with one disk flush. Each statement of a PL/pgSQL
# function sees what committed before it began, so the history read after the lock includes the previous
# turn's commit. codebot_take_slot turns the flush off for a count alone; the claim and the start need
# it, so the caller's setting is put back after admission. (SQLite runs the same steps in one
# transaction: nothing to create there.)
_BEGIN_TURN_POSTGRES = (
    # One scan of the window instead of two: the count after this call's own slot is the count before
    # plus one (other callers wait on the lock), so only the peek (limit 0, no lock) reads what it reads.
    """CREATE OR REPLACE FUNCTION codebot_take_slot(
            p_bucket TEXT, p_limit INTEGER, p_window DOUBLE PRECISION, p_now DOUBLE PRECISION,
            OUT granted BOOLEAN, OUT used BIGINT, OUT oldest DOUBLE PRECISION)
        LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
            -- A rate-limit count is not worth a disk flush per call (see migration 001).
            PERFORM set_config('synchronous_commit', 'off', true);
            granted := FALSE;
            IF p_limit > 0 THEN
                PERFORM pg_advisory_xact_lock(hashtextextended('codebot.bucket:' || p_bucket, 0));
            END IF;
            SELECT COALESCE(SUM(amount), 0), MIN(at) INTO used, oldest
                FROM buckets WHERE bucket = p_bucket AND at > p_now - p_window;
            IF p_limit > 0 AND used < p_limit THEN
                INSERT INTO buckets (bucket, at, amount, expires_at)
                    VALUES (p_bucket, p_now, 1, p_now + p_window);
                granted := TRUE;
                used := used + 1;
                oldest := LEAST(COALESCE(oldest, p_now), p_now);
            END IF;
        END $$""",
    # A new ticket's place in one pass: every live ticket of the workspace is older, so its position is
    # the number waiting plus one, and it runs at once if that is within the free slots (4 statements
    # instead of codebot_gate_poll's 7; the same answer).
    """CREATE OR REPLACE FUNCTION codebot_gate_enter(
            p_platform TEXT, p_workspace TEXT, p_owner TEXT, p_cap INTEGER,
            p_now DOUBLE PRECISION, p_lease DOUBLE PRECISION, OUT ticket BIGINT, OUT place INTEGER)
        LANGUAGE plpgsql VOLATILE AS $$
        DECLARE
            v_running INTEGER;
        BEGIN
            PERFORM pg_advisory_xact_lock(
                hashtextextended('codebot.gate:' || p_platform || ':' || p_workspace, 0));
            DELETE FROM gate_tickets
                WHERE platform = p_platform AND workspace = p_workspace AND lease_until <= p_now;
            SELECT count(*) FILTER (WHERE state = 'running'), count(*) FILTER (WHERE state = 'waiting') + 1
                INTO v_running, place
                FROM gate_tickets WHERE platform = p_platform AND workspace = p_workspace;
            IF place <= p_cap - v_running THEN
                place := 0;
            END IF;
            INSERT INTO gate_tickets (platform, workspace, owner, state, lease_until)
                VALUES (p_platform, p_workspace, p_owner,
                        CASE WHEN place = 0 THEN 'running' ELSE 'waiting' END, p_now + p_lease)
                RETURNING id INTO ticket;
        END $$""",
    """CREATE TYPE codebot_file_head AS (
        name TEXT, size BIGINT, sha256 TEXT, origin TEXT, created_at DOUBLE PRECISION,
        updated_at DOUBLE PRECISION, preview TEXT)""",
    """CREATE TYPE codebot_state_head AS (
        size BIGINT, kept TEXT, dropped TEXT, updated_at DOUBLE PRECISION)""",
    """CREATE FUNCTION codebot_thread_context(
            p_platform TEXT, p_workspace TEXT, p_channel TEXT, p_thread TEXT, p_limit INTEGER,
            OUT history TEXT[], OUT files codebot_file_head[], OUT state codebot_state_head)
        LANGUAGE sql STABLE AS $$
            SELECT
                ARRAY(SELECT body FROM (
                    SELECT seq, body FROM messages WHERE conversation_id = (
                        SELECT id FROM conversations WHERE platform = p_platform
                            AND workspace = p_workspace AND channel = p_channel AND thread = p_thread)
                    ORDER BY seq DESC LIMIT p_limit) AS newest ORDER BY seq),
                ARRAY(SELECT ROW(name, size, sha256, origin, created_at, updated_at,
                                 preview)::codebot_file_head
                      FROM thread_files WHERE platform = p_platform AND workspace = p_workspace
                          AND channel = p_channel AND thread = p_thread ORDER BY name),
                (SELECT ROW(size, kept, dropped, updated_at)::codebot_state_head
                 FROM thread_state WHERE platform = p_platform AND workspace = p_workspace
                     AND channel = p_channel AND thread = p_thread)
        $$""",
    """CREATE FUNCTION codebot_begin_turn(
            p_event TEXT, p_platform TEXT, p_workspace TEXT, p_channel TEXT, p_thread TEXT,
            p_user TEXT, p_question TEXT, p_now DOUBLE PRECISION, p_ttl DOUBLE PRECISION,
            p_version BIGINT, p_admit BOOLEAN,
            p_tokens TEXT, p_tokens_limit BIGINT, p_tokens_window DOUBLE PRECISION,
            p_ws TEXT, p_ws_limit INTEGER, p_ws_window DOUBLE PRECISION,
            p_user_bucket TEXT, p_user_limit INTEGER, p_user_window DOUBLE PRECISION,
            p_owner TEXT, p_lease DOUBLE PRECISION, p_cap INTEGER, p_history INTEGER,
            OUT outcome TEXT, OUT refused TEXT, OUT used BIGINT, OUT oldest DOUBLE PRECISION,
            OUT won BOOLEAN, OUT ticket BIGINT, OUT place INTEGER,
            OUT ctx_history TEXT[], OUT ctx_files codebot_file_head[], OUT ctx_state codebot_state_head)
        LANGUAGE plpgsql VOLATILE AS $$
        DECLARE
            v_flush TEXT := current_setting('synchronous_commit');
            v_context RECORD;
        BEGIN
            IF p_version <> (SELECT COALESCE(max(id), 0) FROM limit_changes
                             WHERE platform = p_platform AND workspace = p_workspace) THEN
                outcome := 'stale';
                RETURN;
            END IF;
            INSERT INTO events (platform, event_id, claimed_at, expires_at)
                VALUES (p_platform, p_event, p_now, p_now + p_ttl)
                ON CONFLICT (platform, event_id) DO UPDATE
                SET claimed_at = excluded.claimed_at, expires_at = excluded.expires_at
                WHERE events.expires_at <= excluded.claimed_at;
            IF NOT FOUND THEN
                outcome := 'duplicate';
                RETURN;
            END IF;
            IF NOT p_admit THEN
                outcome := 'claimed';
                RETURN;
            END IF;
            SELECT a.refused, a.used, a.oldest INTO refused, used, oldest
                FROM codebot_admit_run(p_tokens, p_tokens_limit, p_tokens_window, p_ws, p_ws_limit,
                                       p_ws_window, p_user_bucket, p_user_limit, p_user_window, p_now) a;
            PERFORM set_config('synchronous_commit', v_flush, true);
            IF refused IS NOT NULL THEN
                outcome := 'refused';
                RETURN;
            END IF;
            outcome := 'started';
            SELECT s.won, s.ticket, s.place INTO won, ticket, place
                FROM codebot_start_turn(p_event, p_platform, p_workspace, p_channel, p_thread, p_user,
                                        p_question, p_now, p_owner, p_lease, p_cap) s;
            IF won AND p_history IS NOT NULL THEN
                SELECT * INTO v_context
                    FROM codebot_thread_context(p_platform, p_workspace, p_channel, p_thread, p_history);
                ctx_history := v_context.history;
                ctx_files := v_context.files;
                ctx_state := v_context.state;
            END IF;
        END $$""",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration("001_initial", _INITIAL, _INITIAL_POSTGRES),
    Migration("002_leases", _LEASES, _LEASES_POSTGRES),
    Migration("003_turn_leases", _TURN_LEASES, _TURN_LEASES_POSTGRES),
    Migration("004_start_turn", (), _START_TURN_POSTGRES),
    Migration("005_thread_files", _THREAD_FILES, _THREAD_FILES_POSTGRES),
    Migration("006_admit_run", (), _ADMIT_RUN_POSTGRES),
    Migration("007_stop_requests", _STOP_REQUESTS, _STOP_REQUESTS),
    Migration("008_begin_turn", (), _BEGIN_TURN_POSTGRES),
)


async def apply_migrations(
    db: aiosqlite.Connection, migrations: Sequence[Migration], now: float
) -> list[str]:
    """Apply the migrations this database lacks, in order, in one transaction; return their names.

    An up-to-date database is only read, so a restart succeeds while another process is writing.

    Raises:
        ForeignDatabaseError: the file belongs to another program.
        NewerDatabaseError: a newer codebot has migrated the file.
    """
    if await _up_to_date(db, migrations):
        return []
    try:
        await db.execute("BEGIN IMMEDIATE")
        # Checked again under the write lock: another process may have migrated in the meantime.
        await _check_ownership(db)
        await db.execute(
            "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
        )
        done = await _applied(db, migrations)
        applied = []
        for migration in migrations:
            if migration.name in done:
                continue
            for statement in migration.statements:
                await db.execute(statement)
            await db.execute("INSERT INTO migrations (name, applied_at) VALUES (?, ?)", (migration.name, now))
            applied.append(migration.name)
        await db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        await db.execute("COMMIT")
    except BaseException:
        await _rollback(db)
        raise
    return applied


async def _up_to_date(db: aiosqlite.Connection, migrations: Sequence[Migration]) -> bool:
    if await _application_id(db) != APPLICATION_ID:
        return False
    return await _applied(db, migrations) >= {m.name for m in migrations}


async def _applied(db: aiosqlite.Connection, migrations: Sequence[Migration]) -> set[str]:
    """Return the names recorded as applied, refusing a database that knows more than we do."""
    done = {row[0] for row in await db.execute_fetchall("SELECT name FROM migrations")}
    unknown = sorted(done - {m.name for m in migrations})
    if unknown:
        raise NewerDatabaseError(f"unknown migration {unknown[0]}")
    return done


async def _application_id(db: aiosqlite.Connection) -> int:
    (app_id,) = next(iter(await db.execute_fetchall("PRAGMA application_id")))
    return int(app_id)


async def _check_ownership(db: aiosqlite.Connection) -> None:
    """Refuse a SQLite file made by another program, so we never write tables into it."""
    app_id = await _application_id(db)
    if app_id == APPLICATION_ID:
        return
    if app_id != 0:
        raise ForeignDatabaseError(f"it belongs to another application (application_id {app_id})")
    rows = await db.execute_fetchall(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != ?",
        ("migrations",),
    )
    if list(rows):
        raise ForeignDatabaseError("it holds tables codebot did not create")


async def _rollback(db: aiosqlite.Connection) -> None:
    # SQLite rolls back by itself after some errors (full disk, I/O); then ROLLBACK fails harmlessly.
    with contextlib.suppress(sqlite3.Error):
        await db.execute("ROLLBACK")
