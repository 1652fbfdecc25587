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
from core.store import postgres_threads as threads
from core.store import postgres_turns as turns
from core.store.base import StoreError, Turn
from core.store.delegating import DelegatingStore, SqlModules
from core.store.migrations import MIGRATIONS, ForeignDatabaseError, Migration, NewerDatabaseError
from core.store.postgres_errors import connect_error, read_only_error, redact, translate
from core.store.postgres_migrate import apply_migrations, schema_version

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


class PostgresStore(DelegatingStore):
    """The conversation store in a PostgreSQL database, shared by any number of replicas.

    Args:
        dsn: postgresql:// or postgres:// URL (CODEBOT_DB); query parameters asyncpg does not know
            become server settings, e.g. ?search_path=codebot puts the tables in schema codebot.
        pool_size: most connections this process opens (CODEBOT_DB_POOL_SIZE).
        timeout_s: how long to wait for a connection, a free pool slot or a lock (CODEBOT_DB_BUSY_TIMEOUT_S).
        turn_retention_s: how long finished turn bookkeeping rows are kept.
        migrations: the ordered schema migrations; tests pass extra ones.
    """

    _sql = SqlModules(history, ledger, leases, turns, threads)
    _IN_TRANSACTION = frozenset({"set_limit", "put_files"})  # the rest are one statement each

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
                reset=_session_unchanged,
            )
        except Exception as exc:  # asyncpg has already closed any connection it opened
            # `from None`: a driver message about a malformed URL may quote it, password and all.
            raise connect_error(exc, self._dsn) from None

    def _read(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return self._conn()  # one statement per decision: atomic without BEGIN/COMMIT round trips

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

    async def commit_turn(self, turn: Turn) -> None:
        """Append history, audit records, usage and charges, and mark the turn finished, atomically.

        Committing the same event id twice is a no-op, so a retried commit never duplicates history.
        """
        now = turn.usage.at
        async with self._conn() as db:
            await commit.commit_turn(db, turn)  # one statement: atomic, one round trip, one commit
            if self._sweep_due("turns", now):
                await history.sweep_turns(db, now - self._turn_retention_s)


async def _session_unchanged(db: Any) -> None:
    """Give a connection back as it is. asyncpg's default reset (advisory unlock, CLOSE ALL, UNLISTEN,
    RESET ALL) is one more round trip per store call, and undoes nothing of ours: every setting we change
    is transaction-local (set_config(..., true)), every advisory lock transaction-scoped, and nothing
    listens or keeps a cursor. asyncpg still rolls back a transaction left open before calling this."""


def _discard(db: Any) -> None:
    """Close a broken pooled connection. When the server ended it, asyncpg may already have handed it
    back to the pool (the proxy then refuses every call): nothing is left to close, and it must not
    turn a clear StoreError into a driver error."""
    with contextlib.suppress(asyncpg.exceptions.InterfaceError):
        db.terminate()
