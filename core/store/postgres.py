"""PostgresStore: the Store protocol over a PostgreSQL database through a bounded asyncpg pool.

asyncpg rather than psycopg 3: it is asyncio-native with its own connection pool, speaks the binary
protocol and caches prepared statements per connection, which keeps a turn's handful of statements
well under a millisecond each on a local server; psycopg 3 would need psycopg_pool and a C build to match.

Atomicity across replicas: every decision is one statement (claim_event, start_turn, has_conversation,
reset, commit_turn), one function call taking a transaction lock (take_slot), or a transaction whose
first statement takes a per-limit advisory lock (set_limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from core.store import postgres_commit as commit
from core.store import postgres_history as history
from core.store import postgres_leases as leases
from core.store import postgres_ledger as ledger
from core.store import postgres_turns as turns
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
from core.store.migrations import MIGRATIONS, ForeignDatabaseError, Migration, NewerDatabaseError
from core.store.postgres_errors import connect_error, read_only_error, redact, translate
from core.store.postgres_migrate import apply_migrations, schema_version
from core.store.postgres_threads import PostgresThreadFiles
from core.types import ThreadKey

SWEEP_EVERY_S = 10.0  # expired rows only cost space, so sweeping them needs no hurry

# What a driver call can raise besides our own errors; all of it becomes a StoreError.
_DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)
# After these a connection's protocol state is unknown (a server that dropped it mid-query leaves
# asyncpg's state machine half-way): it is closed instead of going back to the pool.
_BROKEN = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)


class PostgresStore(PostgresThreadFiles):
    """The conversation store in a PostgreSQL database, shared by any number of replicas.

    Args:
        dsn: postgresql:// or postgres:// URL (CODEBOT_DB); query parameters asyncpg does not know
            become server settings, e.g. ?search_path=codebot puts the tables in schema codebot.
        pool_size: most connections this process opens (CODEBOT_DB_POOL_SIZE).
        timeout_s: how long to wait for a connection, a free pool slot or a lock (CODEBOT_DB_BUSY_TIMEOUT_S).
        turn_retention_s: how long finished turn bookkeeping rows are kept.
        migrations: the ordered schema migrations; tests pass extra ones.
    """

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = 10,
        timeout_s: float = 5.0,
        turn_retention_s: float = 7 * 86400.0,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self._dsn = dsn
        self._pool_size = pool_size
        self._timeout_s = max(timeout_s, 0.1)
        self._turn_retention_s = turn_retention_s
        self._migrations = tuple(migrations)
        self._pool: Any = None
        self._opening = asyncio.Lock()
        self._swept: dict[str, float] = {}

    @property
    def path(self) -> str:
        """The database this store uses, with the password hidden (safe to print)."""
        return redact(self._dsn)

    async def open(self) -> None:
        """Connect the pool and apply pending migrations in order, inside a transaction."""
        async with self._opening:  # two concurrent opens must not build two pools
            if self._pool is None:
                self._pool = await self._migrated_pool()

    async def _migrated_pool(self) -> Any:
        pool = await self._create_pool()
        try:
            async with pool.acquire(timeout=self._timeout_s) as db:
                await apply_migrations(db, self._migrations, now=time.time())
        except NewerDatabaseError as exc:
            await pool.close()
            raise StoreError(
                f"the database ({self.path}) was written by a newer codebot ({exc}); "
                "upgrade codebot to use it"
            ) from None
        except ForeignDatabaseError as exc:
            await pool.close()
            raise StoreError(f"the database ({self.path}) is not a codebot database: {exc}") from None
        except BaseException as exc:
            pool.terminate()
            if isinstance(exc, _DRIVER_ERRORS):
                raise translate(exc, self._dsn) from None
            raise
        return pool

    async def _create_pool(self) -> Any:
        # Every connection is opened here and kept: opening one costs a few ms of CPU on the event loop
        # (SCRAM's key derivation), which would stall every turn if it happened under load.
        # lock_timeout bounds every wait for a row or advisory lock held by another replica; the command
        # timeout is the safety net for a server that stops answering altogether.
        try:
            return await asyncpg.create_pool(
                self._dsn,
                min_size=self._pool_size,
                max_size=self._pool_size,
                max_inactive_connection_lifetime=0,
                timeout=self._timeout_s,
                command_timeout=max(30.0, 2 * self._timeout_s),
                server_settings=self._server_settings(),
            )
        except Exception as exc:  # asyncpg has already closed any connection it opened
            # `from None`: a driver message about a malformed URL may quote it, password and all.
            raise connect_error(exc, self._dsn) from None

    def _server_settings(self) -> dict[str, str]:
        settings = {"lock_timeout": str(int(self._timeout_s * 1000))}
        if "application_name=" not in self._dsn:  # the DSN's own name (one per replica, say) wins
            settings["application_name"] = "codebot"
        return settings

    async def close(self) -> None:
        """Close the pool after in-flight calls finish; calling it twice is harmless."""
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await pool.close()
            except _DRIVER_ERRORS:
                pool.terminate()

    async def health(self) -> str:
        """Return "ok" if the database answers and accepts writes, else the problem."""
        try:
            async with self._conn() as db:
                read_only = await db.fetchval("SELECT current_setting('transaction_read_only')")
        except StoreError as exc:
            return str(exc)
        if read_only == "on":
            return str(read_only_error(self._dsn))
        return "ok"

    def pool_usage(self) -> tuple[int, int]:
        """Return (connections open now, the most the pool may open); (0, max) when closed."""
        pool = self._pool
        return (0 if pool is None else pool.get_size(), self._pool_size)

    async def schema(self) -> list[str]:
        """Return the applied migrations' names (for `codebot doctor`)."""
        async with self._conn() as db:
            return await schema_version(db)

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[Any]:
        """Lend a pooled connection and translate driver errors."""
        pool = self._pool
        if pool is None:
            raise StoreError("the store is not open")
        try:
            db = await pool.acquire(timeout=self._timeout_s)
        except TimeoutError:
            raise StoreError(
                f"all {self._pool_size} database connections stayed busy for {self._timeout_s:g} s "
                f"({self.path}); raise CODEBOT_DB_POOL_SIZE or lighten the load"
            ) from None
        except _DRIVER_ERRORS as exc:
            raise translate(exc, self._dsn) from exc
        try:
            yield db
        except _BROKEN as exc:
            _discard(db)  # its protocol state is unknown; the pool opens a fresh one in its place
            raise translate(exc, self._dsn) from exc
        except asyncpg.exceptions.DataError as exc:  # a value the column type cannot hold
            raise StoreError(f"the store rejected an invalid record ({type(exc).__name__})") from exc
        except _DRIVER_ERRORS as exc:
            raise translate(exc, self._dsn) from exc
        finally:
            await pool.release(db)

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[Any]:
        """Run the body in one transaction: all of it commits, or none of it."""
        async with self._conn() as db, db.transaction():
            yield db

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
        async with self._conn() as db:
            return await history.load_messages(db, key, limit)

    async def has_conversation(self, key: ThreadKey) -> bool:
        """Return whether the thread has stored history or a turn in progress (one snapshot)."""
        async with self._conn() as db:
            return await history.has_conversation(db, key)

    async def reset_conversation(self, key: ThreadKey) -> int:
        """Forget a thread's history; return how many entries were removed."""
        async with self._conn() as db:
            return await history.reset_conversation(db, key)

    async def commit_turn(self, turn: Turn) -> None:
        """Append history, audit records, usage and charges, and mark the turn finished, atomically.

        Committing the same event id twice is a no-op, so a retried commit never duplicates history.
        """
        now = turn.usage.at
        async with self._conn() as db:
            await commit.commit_turn(db, turn)  # one statement: atomic, one round trip, one commit
            if self._sweep_due("turns", now):
                await history.sweep_turns(db, now - self._turn_retention_s)

    # de-duplication and turn bookkeeping

    async def claim_event(self, platform: str, event_id: str, now: float, ttl_s: float) -> bool:
        """Record an event id; True only for the first claim within ttl_s (atomic across replicas)."""
        async with self._conn() as db:
            if self._sweep_due("events", now):
                await history.sweep_events(db, now)
            return await history.claim_event(db, platform, event_id, now, ttl_s)

    async def start_turn(
        self, key: ThreadKey, event_id: str, user_id: str, question: str, now: float
    ) -> None:
        """Note that a turn began, so a crash or shutdown can be reported later."""
        async with self._conn() as db:
            await history.start_turn(db, key, event_id, user_id, question, now)

    async def abandon_turn(self, event_id: str, reason: str, now: float) -> None:
        """Mark a started turn abandoned with a reason; a committed turn is left as it is."""
        async with self._conn() as db:
            await history.abandon_turn(db, event_id, reason, now)

    async def unfinished_turns(self) -> list[tuple[ThreadKey, str, str]]:
        """Turns started but neither committed nor abandoned: (key, event_id, question), oldest first."""
        async with self._conn() as db:
            return await history.unfinished_turns(db)

    # audit and usage

    async def audit(
        self, workspace: Workspace, limit: int = 20, before_id: int | None = None
    ) -> list[AuditRecord]:
        """Return a workspace's audit records, newest first."""
        async with self._conn() as db:
            return await ledger.audit(db, workspace, limit, before_id)

    async def audit_entry(self, workspace: Workspace, audit_id: int) -> AuditRecord | None:
        """Return one audit record, or None if it does not exist in this workspace."""
        async with self._conn() as db:
            return await ledger.audit_entry(db, workspace, audit_id)

    async def export_audit(self, workspace: Workspace | None) -> list[AuditRecord]:
        """Return audit records oldest first; all workspaces when None."""
        async with self._conn() as db:
            return await ledger.export_audit(db, workspace)

    async def add_usage(self, usage: UsageRecord) -> None:
        """Add usage outside a turn (e.g. tokens spent on a failed turn)."""
        async with self._conn() as db:
            await ledger.add_usage(db, usage)

    async def usage(self, workspace: Workspace, since: float, user_id: str | None = None) -> UsageTotals:
        """Return usage totals at or after `since`, for the workspace or one of its users."""
        async with self._conn() as db:
            return await ledger.usage(db, workspace, since, user_id)

    # limits

    async def limits(self, workspace: Workspace) -> dict[str, str]:
        """Return the values admins set for this workspace (raw strings)."""
        async with self._conn() as db:
            return await ledger.limits(db, workspace)

    async def set_limit(self, change: LimitChange) -> None:
        """Store a new value and its change record atomically."""
        async with self._write() as db:
            await ledger.set_limit(db, change)

    async def limit_changes(self, workspace: Workspace, limit: int = 20) -> list[LimitChange]:
        """Return a workspace's limit changes, newest first."""
        async with self._conn() as db:
            return await ledger.limit_changes(db, workspace, limit)

    async def take_slot(self, bucket: str, limit: int, window_s: float, now: float) -> SlotResult:
        """Count one use in a sliding window if fewer than `limit` are counted; atomic across replicas."""
        async with self._conn() as db:
            if self._sweep_due("buckets", now):
                await ledger.sweep_buckets(db, now)
            return await ledger.take_slot(db, bucket, limit, window_s, now)

    async def add_to_bucket(self, bucket: str, amount: int, window_s: float, now: float) -> None:
        """Add an amount (e.g. tokens) to a sliding-window total."""
        async with self._conn() as db:
            if self._sweep_due("buckets", now):
                await ledger.sweep_buckets(db, now)
            await ledger.add(db, bucket, amount, window_s, now)

    async def bucket_total(self, bucket: str, window_s: float, now: float) -> int:
        """Return a bucket's total inside the window ending at `now`."""
        async with self._conn() as db:
            return await ledger.bucket_total(db, bucket, window_s, now)

    async def admit_run(self, check: RunCheck) -> RunAdmission:
        """Check a question's token quota and run windows and take its slots, in one call."""
        async with self._conn() as db:
            if self._sweep_due("buckets", check.now):
                await ledger.sweep_buckets(db, check.now)
            return await ledger.admit_run(db, check)

    # leases shared by replicas (queue tickets, thread locks)

    async def gate_enter(
        self, workspace: Workspace, owner: str, cap: int, now: float, lease_s: float
    ) -> tuple[int, int]:
        """Queue a ticket and poll it at once: (ticket, 0 = running, N = queue position)."""
        async with self._conn() as db:
            return await leases.gate_enter(db, workspace, owner, max(cap, 1), now, lease_s)

    async def gate_poll(
        self, ticket: int, workspace: Workspace, cap: int, now: float, lease_s: float
    ) -> int | None:
        """Renew the ticket and admit it if a slot is free: 0 = running, N = queue position, None = lost."""
        async with self._conn() as db:
            return await leases.gate_poll(db, ticket, workspace, max(cap, 1), now, lease_s)

    async def gate_leave(self, ticket: int) -> None:
        """Give up a ticket, running or waiting."""
        async with self._conn() as db:
            await leases.gate_leave(db, ticket)

    async def gate_counts(self, workspace: Workspace, now: float) -> tuple[int, int]:
        """Return (running, waiting) live tickets of the workspace, across replicas."""
        async with self._conn() as db:
            return await leases.gate_counts(db, workspace, now)

    async def lock_thread(self, key: ThreadKey, owner: str, now: float, lease_s: float) -> bool:
        """Take or renew the thread's lock for `owner`; True if `owner` holds it now."""
        async with self._conn() as db:
            return await leases.lock_thread(db, key, owner, now, lease_s)

    async def unlock_thread(self, key: ThreadKey, owner: str) -> None:
        """Release the thread's lock if `owner` still holds it."""
        async with self._conn() as db:
            await leases.unlock_thread(db, key, owner)

    # turn leases (a started turn's owner and lease; its thread lock): one statement each

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
        async with self._conn() as db:
            return await turns.start_turn_leased(
                db, key, event_id, user_id, question, now, owner, lease_s, cap
            )

    async def renew_turn(self, event_id: str, owner: str, now: float, lease_s: float) -> tuple[str, bool]:
        """Extend a started turn's lease: ("renewed" | "finished" | "lost", thread lock still ours)."""
        async with self._conn() as db:
            return await turns.renew_turn(db, event_id, owner, now, lease_s)

    async def take_over_turns(
        self, now: float, reason: str, expired_only: bool = True, platforms: Sequence[str] | None = None
    ) -> list[tuple[ThreadKey, str, str]]:
        """Abandon started turns whose lease ended (or all), free their threads, and return them."""
        async with self._conn() as db:
            return await turns.take_over_turns(db, now, reason, expired_only, platforms)

    async def release_thread(self, key: ThreadKey, event_id: str) -> None:
        """Free the thread's lock if the turn holds it."""
        async with self._conn() as db:
            await turns.release_thread(db, key, event_id)


def _discard(db: Any) -> None:
    """Close a broken pooled connection. When the server ended it, asyncpg may already have handed it
    back to the pool (the proxy then refuses every call): nothing is left to close, and it must not
    turn a clear StoreError into a driver error."""
    with contextlib.suppress(asyncpg.exceptions.InterfaceError):
        db.terminate()
