"""SQLiteStore: the Store protocol over one SQLite file in WAL mode, through aiosqlite.

Atomicity across processes sharing the file comes from `BEGIN IMMEDIATE`: it takes SQLite's write lock
before the first read, so a check-then-write (last rate-limit slot, event claim) cannot interleave with
another writer. Within one process an asyncio.Lock serialises users of the single connection, because
statements of two coroutines would otherwise land in each other's transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from core.store import sqlite_history as history
from core.store import sqlite_leases as leases
from core.store import sqlite_ledger as ledger
from core.store import sqlite_turns as turns
from core.store.base import (
    AuditRecord,
    LimitChange,
    RunAdmission,
    RunCheck,
    SlotResult,
    StoreError,
    Turn,
    TurnStart,
    UsageRecord,
    UsageTotals,
    Workspace,
)
from core.store.migrations import (
    MIGRATIONS,
    ForeignDatabaseError,
    Migration,
    NewerDatabaseError,
    apply_migrations,
)
from core.store.sqlite_errors import corrupt_error, translate
from core.store.sqlite_file import prepare_file
from core.store.sqlite_threads import SQLiteThreadFiles
from core.types import ThreadKey

_MEMORY = ":memory:"


SWEEP_EVERY_S = 10.0  # expired rows only cost space, so sweeping them needs no hurry


class SQLiteStore(SQLiteThreadFiles):
    """The conversation store in one SQLite file; safe to share between processes and replicas on one host.

    Args:
        path: the database file (CODEBOT_DB); its directory is created if missing.
        busy_timeout_s: how long to wait for another process's write lock before raising StoreError.
        turn_retention_s: how long finished turn bookkeeping rows are kept (only crash recovery reads them).
        min_free_mb: health() reports a problem when the database's disk has less free space than this.
        migrations: the ordered schema migrations; tests pass extra ones.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        busy_timeout_s: float = 5.0,
        turn_retention_s: float = 7 * 86400.0,
        min_free_mb: float = 50.0,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> None:
        self._path = str(path) if str(path) == _MEMORY else str(Path(path).expanduser())
        self._busy_timeout_s = busy_timeout_s
        self._turn_retention_s = turn_retention_s
        self._min_free_mb = min_free_mb
        self._migrations = tuple(migrations)
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._swept: dict[str, float] = {}  # sweep name -> caller time of its last run

    @property
    def path(self) -> str:
        """The database file this store uses."""
        return self._path

    async def open(self) -> None:
        """Open the database and apply pending migrations in order, inside a transaction."""
        async with self._lock:
            if self._db is not None:
                return
            db = await self._connect()
            try:
                await self._prepare(db)
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    await db.close()  # an unclosed connection's thread would keep the process alive
                raise
            self._db = db

    async def close(self) -> None:
        """Close the connection after in-flight calls finish; calling it twice is harmless."""
        async with self._lock:
            db, self._db = self._db, None
            if db is not None:
                try:
                    # SQLite's advice for long-lived connections: refresh planner statistics on the way out.
                    with contextlib.suppress(sqlite3.Error):
                        await db.execute("PRAGMA optimize")
                    await db.close()
                except sqlite3.Error as exc:
                    raise translate(exc, self._path) from exc

    async def health(self) -> str:
        """Return "ok" if the store can take the write lock and its disk has room, else the problem."""
        try:
            async with self._write() as db:
                await db.execute_fetchall("SELECT count(*) FROM migrations")
        except StoreError as exc:
            return str(exc)
        if self._path == _MEMORY:
            return "ok"
        free_mb = (await asyncio.to_thread(shutil.disk_usage, Path(self._path).parent)).free / 1e6
        if free_mb < self._min_free_mb:
            return f"the disk holding the database has only {free_mb:.0f} MB free (CODEBOT_DB={self._path})"
        return "ok"

    async def _connect(self) -> aiosqlite.Connection:
        if self._path != _MEMORY:
            await asyncio.to_thread(prepare_file, self._path)
        try:
            # isolation_level=None: no implicit transactions; every write says BEGIN IMMEDIATE itself.
            return await aiosqlite.connect(self._path, timeout=self._busy_timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise translate(exc, self._path) from exc

    async def _prepare(self, db: aiosqlite.Connection) -> None:
        """Configure the connection and migrate the schema, translating failures into StoreError."""
        try:
            await self._configure(db)
            await apply_migrations(db, self._migrations, now=time.time())
        except NewerDatabaseError as exc:
            raise StoreError(
                f"{self._path} was written by a newer codebot ({exc}); upgrade codebot to use it"
            ) from None
        except ForeignDatabaseError as exc:
            raise corrupt_error(self._path, str(exc)) from None
        except sqlite3.Error as exc:
            raise translate(exc, self._path) from exc

    async def _configure(self, db: aiosqlite.Connection) -> None:
        await db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
        await db.execute("PRAGMA journal_mode = WAL")
        # NORMAL is durable against a process crash in WAL mode; only a power cut may lose the last commit.
        await db.execute("PRAGMA synchronous = NORMAL")
        await db.execute("PRAGMA foreign_keys = ON")

    @asynccontextmanager
    async def _use(self) -> AsyncIterator[aiosqlite.Connection]:
        """Serialise use of the connection and translate driver errors."""
        async with self._lock:
            if self._db is None:
                raise StoreError("the store is not open")
            try:
                yield self._db
            except sqlite3.Error as exc:
                raise translate(exc, self._path) from exc

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        """Run the body in a BEGIN IMMEDIATE transaction: all of it commits, or none of it."""
        async with self._use() as db:
            try:
                # BEGIN sits inside the try: if cancellation lands while it is queued, the ROLLBACK
                # below still follows it, so the connection never keeps an open write transaction.
                await db.execute("BEGIN IMMEDIATE")
                yield db
                await db.execute("COMMIT")
            except BaseException:
                # Statements run in order on the connection's thread, so this ROLLBACK follows anything the
                # body queued. It fails harmlessly when there is nothing to undo: BEGIN itself failed,
                # SQLite already rolled back (full disk, I/O error), or a cancelled COMMIT went through.
                with contextlib.suppress(sqlite3.Error):
                    await db.execute("ROLLBACK")
                raise

    def _sweep_due(self, name: str, now: float) -> bool:
        """Garbage-collect expired rows at most every SWEEP_EVERY_S (of the caller's clock), not per call."""
        last = self._swept.get(name)
        if last is not None and 0 <= now - last < SWEEP_EVERY_S:
            return False
        self._swept[name] = now
        return True

    # conversations

    async def load_messages(self, key: ThreadKey, limit: int) -> list[str]:
        """Return the newest `limit` history entries of a thread, oldest first."""
        async with self._use() as db:
            return await history.load_messages(db, key, limit)

    async def has_conversation(self, key: ThreadKey) -> bool:
        """Return whether the thread has stored history or a turn in progress (one snapshot)."""
        async with self._use() as db:
            return await history.has_conversation(db, key)

    async def reset_conversation(self, key: ThreadKey) -> int:
        """Forget a thread's history; return how many entries were removed."""
        async with self._write() as db:
            return await history.reset_conversation(db, key)

    async def commit_turn(self, turn: Turn) -> None:
        """Append history, audit records, usage and charges, and mark the turn finished, atomically.

        Committing the same event id twice is a no-op, so a retried commit never duplicates history.
        """
        now = turn.usage.at
        async with self._write() as db:
            if turn.ticket is not None:
                await leases.gate_leave(db, turn.ticket)
            if await history.turn_committed(db, turn.event_id):
                return
            if turn.messages:
                await history.append_messages(db, turn.key, turn.messages, now)
            await ledger.insert_audits(db, turn.audits, turn.event_id)
            await ledger.add_usage(db, turn.usage)
            for charge in turn.charges:
                await ledger.add(db, charge.bucket, charge.amount, charge.window_s, now)
            await history.finish_turn(db, turn.key, turn.event_id, turn.usage.user_id, "committed", None, now)
            await turns.release_thread(db, turn.key, turn.event_id)
            if self._sweep_due("turns", now):
                await history.sweep_turns(db, now - self._turn_retention_s)

    # de-duplication and turn bookkeeping

    async def claim_event(self, platform: str, event_id: str, now: float, ttl_s: float) -> bool:
        """Record an event id; True only for the first claim within ttl_s (atomic across processes)."""
        async with self._use() as db:  # single statements: each is atomic without BEGIN/COMMIT
            if self._sweep_due("events", now):
                await history.sweep_events(db, now)
            return await history.claim_event(db, platform, event_id, now, ttl_s)

    async def start_turn(
        self, key: ThreadKey, event_id: str, user_id: str, question: str, now: float
    ) -> None:
        """Note that a turn began, so a crash or shutdown can be reported later."""
        async with self._use() as db:  # one statement, atomic on its own
            await history.start_turn(db, key, event_id, user_id, question, now)

    async def abandon_turn(self, event_id: str, reason: str, now: float) -> None:
        """Mark a started turn abandoned with a reason; a committed turn is left as it is."""
        async with self._write() as db:
            await history.abandon_turn(db, event_id, reason, now)
            await db.execute("DELETE FROM thread_locks WHERE owner = ?", (event_id,))

    async def unfinished_turns(self) -> list[tuple[ThreadKey, str, str]]:
        """Turns started but neither committed nor abandoned: (key, event_id, question), oldest first."""
        async with self._use() as db:
            return await history.unfinished_turns(db)

    # audit and usage

    async def audit(
        self, workspace: Workspace, limit: int = 20, before_id: int | None = None
    ) -> list[AuditRecord]:
        """Return a workspace's audit records, newest first."""
        async with self._use() as db:
            return await ledger.audit(db, workspace, limit, before_id)

    async def audit_entry(self, workspace: Workspace, audit_id: int) -> AuditRecord | None:
        """Return one audit record, or None if it does not exist in this workspace."""
        async with self._use() as db:
            return await ledger.audit_entry(db, workspace, audit_id)

    async def export_audit(self, workspace: Workspace | None) -> list[AuditRecord]:
        """Return audit records oldest first; all workspaces when None."""
        async with self._use() as db:
            return await ledger.export_audit(db, workspace)

    async def add_usage(self, usage: UsageRecord) -> None:
        """Add usage outside a turn (e.g. tokens spent on a failed turn)."""
        async with self._write() as db:
            await ledger.add_usage(db, usage)

    async def usage(self, workspace: Workspace, since: float, user_id: str | None = None) -> UsageTotals:
        """Return usage totals at or after `since`, for the workspace or one of its users."""
        async with self._use() as db:
            return await ledger.usage(db, workspace, since, user_id)

    # limits

    async def limits(self, workspace: Workspace) -> dict[str, str]:
        """Return the values admins set for this workspace (raw strings)."""
        async with self._use() as db:
            return await ledger.limits(db, workspace)

    async def set_limit(self, change: LimitChange) -> None:
        """Store a new value and its change record atomically."""
        async with self._write() as db:
            await ledger.set_limit(db, change)

    async def limit_changes(self, workspace: Workspace, limit: int = 20) -> list[LimitChange]:
        """Return a workspace's limit changes, newest first."""
        async with self._use() as db:
            return await ledger.limit_changes(db, workspace, limit)

    async def take_slot(self, bucket: str, limit: int, window_s: float, now: float) -> SlotResult:
        """Count one use in a sliding window if fewer than `limit` are counted; atomic across processes."""
        async with self._use() as db:  # the deciding statement is atomic on its own
            if self._sweep_due("buckets", now):
                await ledger.sweep_buckets(db, now)
            return await ledger.take_slot(db, bucket, limit, window_s, now)

    async def add_to_bucket(self, bucket: str, amount: int, window_s: float, now: float) -> None:
        """Add an amount (e.g. tokens) to a sliding-window total."""
        async with self._use() as db:  # single statements: each is atomic without BEGIN/COMMIT
            if self._sweep_due("buckets", now):
                await ledger.sweep_buckets(db, now)
            await ledger.add(db, bucket, amount, window_s, now)

    async def bucket_total(self, bucket: str, window_s: float, now: float) -> int:
        """Return a bucket's total inside the window ending at `now`."""
        async with self._use() as db:
            return await ledger.bucket_total(db, bucket, window_s, now)

    async def admit_run(self, check: RunCheck) -> RunAdmission:
        """Check a question's token quota and run windows and take its slots, in one call."""
        async with self._write() as db:
            if self._sweep_due("buckets", check.now):
                await ledger.sweep_buckets(db, check.now)
            return await ledger.admit_run(db, check)

    # leases shared by replicas (queue tickets, thread locks)

    async def gate_enter(
        self, workspace: Workspace, owner: str, cap: int, now: float, lease_s: float
    ) -> tuple[int, int]:
        """Queue a ticket and poll it at once: (ticket, 0 = running, N = queue position)."""
        async with self._write() as db:
            return await leases.gate_enter(db, workspace, owner, max(cap, 1), now, lease_s)

    async def gate_poll(
        self, ticket: int, workspace: Workspace, cap: int, now: float, lease_s: float
    ) -> int | None:
        """Renew the ticket and admit it if a slot is free: 0 = running, N = queue position, None = lost."""
        async with self._write() as db:
            return await leases.gate_poll(db, ticket, workspace, max(cap, 1), now, lease_s)

    async def gate_leave(self, ticket: int) -> None:
        """Give up a ticket, running or waiting."""
        async with self._use() as db:
            await leases.gate_leave(db, ticket)

    async def gate_counts(self, workspace: Workspace, now: float) -> tuple[int, int]:
        """Return (running, waiting) live tickets of the workspace, across processes."""
        async with self._use() as db:
            return await leases.gate_counts(db, workspace, now)

    async def lock_thread(self, key: ThreadKey, owner: str, now: float, lease_s: float) -> bool:
        """Take or renew the thread's lock for `owner`; True if `owner` holds it now."""
        async with self._use() as db:  # one statement, atomic on its own
            return await leases.lock_thread(db, key, owner, now, lease_s)

    async def unlock_thread(self, key: ThreadKey, owner: str) -> None:
        """Release the thread's lock if `owner` still holds it."""
        async with self._use() as db:
            await leases.unlock_thread(db, key, owner)

    # turn leases (a started turn's owner and lease; its thread lock)

    async def start_turn_leased(
        self,
        key: ThreadKey,
        event_id: str,
        user_id: str,
        question: str,
        now: float,
        owner: str,
        lease_s: float,
        cap: int | None = None,
    ) -> TurnStart:
        """Start the turn with a lease, try its thread's lock and, if it got it and a cap is given, queue."""
        async with self._write() as db:
            return await turns.start_turn_leased(
                db, key, event_id, user_id, question, now, owner, lease_s, cap
            )

    async def renew_turn(self, event_id: str, owner: str, now: float, lease_s: float) -> tuple[str, bool]:
        """Extend a started turn's lease: ("renewed" | "finished" | "lost", thread lock still ours)."""
        async with self._write() as db:
            return await turns.renew_turn(db, event_id, owner, now, lease_s)

    async def take_over_turns(
        self, now: float, reason: str, expired_only: bool = True, platforms: Sequence[str] | None = None
    ) -> list[tuple[ThreadKey, str, str]]:
        """Abandon started turns whose lease ended (or all), free their threads, and return them."""
        async with self._write() as db:
            return await turns.take_over_turns(db, now, reason, expired_only, platforms)

    async def release_thread(self, key: ThreadKey, event_id: str) -> None:
        """Free the thread's lock if the turn holds it."""
        async with self._use() as db:
            await turns.release_thread(db, key, event_id)
