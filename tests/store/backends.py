"""The two store backends behind one test interface, each test on a database of its own.

PostgreSQL tests need CODEBOT_TEST_POSTGRES (a DSN; `.ci/postgres.sh` provides one). Outside CI they
are skipped without it; in CI (CI set) its absence fails them, so PostgreSQL is never skipped silently.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiosqlite
import pytest

from core.store.base import Store
from core.store.postgres import PostgresStore
from core.store.sqlite import SQLiteStore

ENV = "CODEBOT_TEST_POSTGRES"


def postgres_dsn(environ: Mapping[str, str] = os.environ) -> str:
    """Return the test server's DSN, or skip (outside CI) / fail (in CI) when none is configured."""
    dsn = environ.get(ENV, "").strip()
    if dsn:
        return dsn
    if environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{ENV} is not set in CI: .ci/run must source .ci/postgres.sh before the tests")
    pytest.skip(f"PostgreSQL tests need {ENV}=postgresql://... (see README, Development)")


@dataclass(frozen=True)
class Backend:
    """Where one test's database lives: a SQLite file, or a fresh PostgreSQL schema."""

    name: str  # "sqlite" or "postgres"
    target: str  # the CODEBOT_DB value: a file path, or a DSN whose search_path is the test's schema

    def new(self, **kwargs: Any) -> Store:
        """Return a new, unopened store on this database (its own connections, as a replica has)."""
        if self.name == "sqlite":
            return SQLiteStore(self.target, **kwargs)
        return PostgresStore(self.target, **kwargs)

    def with_settings(self, **settings: str) -> str:
        """Return the PostgreSQL DSN with extra server settings (asyncpg passes unknown parameters on)."""
        return self.target + "".join(f"&{k}={quote(v)}" for k, v in settings.items())

    async def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Run one read-only query straight on the database, bypassing the store."""
        if self.name == "sqlite":
            async with aiosqlite.connect(self.target) as db:
                return [tuple(r) for r in await db.execute_fetchall(sql)]
        async with _pg(self.target) as db:
            return [tuple(r) for r in await db.fetch(sql)]

    async def execute(self, sql: str) -> None:
        """Run one statement straight on the database (setting up a test's odd situation)."""
        if self.name == "sqlite":
            await asyncio.to_thread(Path(self.target).parent.mkdir, parents=True, exist_ok=True)
            async with aiosqlite.connect(self.target) as db:
                await db.execute(sql)
                await db.commit()
            return
        async with _pg(self.target) as db:
            await db.execute(sql)

    async def tables(self) -> set[str]:
        """Return the names of the tables in the test's database (or schema)."""
        if self.name == "sqlite":
            return {r[0] for r in await self.rows("SELECT name FROM sqlite_schema WHERE type = 'table'")}
        return {
            r[0]
            for r in await self.rows("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        }


@asynccontextmanager
async def _pg(dsn: str) -> AsyncIterator[Any]:
    import asyncpg

    db = await asyncpg.connect(dsn, timeout=30)
    try:
        yield db
    finally:
        await db.close()


@asynccontextmanager
async def postgres_schema(dsn: str) -> AsyncIterator[str]:
    """Create a schema of its own for one test, yield a DSN that uses it, and drop it afterwards.

    Schemas (not databases) keep set-up to a few milliseconds; their random names let several test
    sessions share one server at the same time.
    """
    schema = f"test_{uuid.uuid4().hex[:16]}"
    async with _pg(dsn) as admin:
        await admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield dsn + ("&" if "?" in dsn else "?") + f"search_path={schema}"
    finally:
        await _drop_schema(dsn, schema)


async def _drop_schema(dsn: str, schema: str, tries: int = 5) -> None:
    """Drop the test's schema. A connection of a process that is just exiting may still hold a lock on
    one of its tables; if PostgreSQL picks the DROP as the deadlock's victim, it is simply tried again."""
    import asyncpg

    for attempt in range(tries):
        try:
            async with _pg(dsn) as admin:
                await admin.execute(f"DROP SCHEMA {schema} CASCADE")
            return
        except asyncpg.exceptions.DeadlockDetectedError:
            if attempt == tries - 1:
                raise
            await asyncio.sleep(0.5)


@asynccontextmanager
async def backend_for(name: str, tmp_path: Path) -> AsyncIterator[Backend]:
    """Yield a Backend of the given kind on a fresh database."""
    if name == "sqlite":
        yield Backend("sqlite", str(tmp_path / "data" / "codebot.db"))
        return
    async with postgres_schema(postgres_dsn()) as dsn:
        yield Backend("postgres", dsn)
