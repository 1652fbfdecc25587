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
from core.store import sqlite_threads as threads
from core.store import sqlite_turns as turns
from core.store.base import StoreError, Turn
from core.store.delegating import DelegatingStore, SqlModules
from core.store.migrations import (
    MIGRATIONS,
    ForeignDatabaseError,
    Migration,
    NewerDatabaseError,
    apply_migrations,
)
from core.store.sqlite_errors import corrupt_error, translate
from core.store.sqlite_file import prepare_file

_MEMORY = ":memory:"

# Check-then-write methods (and multi-statement ones) run in BEGIN IMMEDIATE; single statements need none.
_IN_TRANSACTION = frozenset(
    {"reset_conversation", "abandon_turn", "add_usage", "set_limit", "admit_run", "gate_enter", "gate_poll"}
    | {"start_turn_leased", "renew_turn", "take_over_turns", "load_workspace", "put_files", "delete_files"}
    | {"save_state", "clear_workspace", "sweep_workspaces", "request_stop", "begin_turn"}
)


class SQLiteStore(DelegatingStore):
    """The conversation store in one SQLite file; safe to share between processes and replicas on one host.

    Args:
        path: the database file (CODEBOT_DB); its directory is created if missing.
        busy_timeout_s: how long to wait for another process's write lock before raising StoreError.
        turn_retention_s: how long finished turn bookkeeping rows are kept (only crash recovery reads them).
        min_free_mb: health() reports a problem when the database's disk has less free space than this.
        migrations: the ordered schema migrations; tests pass extra ones.
    """

    _sql = SqlModules(history, ledger, leases, turns, threads)
    _IN_TRANSACTION = _IN_TRANSACTION

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

    def _read(self) -> contextlib.AbstractAsyncContextManager[aiosqlite.Connection]:
        return self._use()  # single statements are atomic on their own: no BEGIN/COMMIT round trips

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
