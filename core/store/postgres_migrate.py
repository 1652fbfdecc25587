"""Apply the shared migration steps (core.store.migrations) to a PostgreSQL schema, in one transaction.

Replicas starting together take turns on a transaction-scoped advisory lock, so each step runs once;
an up-to-date schema is only read, so a restart needs no lock and no write access.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.store.migrations import ForeignDatabaseError, Migration, NewerDatabaseError
from core.store.postgres_history import Conn

_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('codebot.migrate:' || current_schema(), 0))"


async def apply_migrations(db: Conn, migrations: Sequence[Migration], now: float) -> list[str]:
    """Apply the migrations this schema lacks, in order, in one transaction; return their names.

    Raises:
        ForeignDatabaseError: the schema holds tables of another program.
        NewerDatabaseError: a newer codebot has migrated the schema.
    """
    if await _up_to_date(db, migrations):
        return []
    async with db.transaction():
        await db.execute(_LOCK)
        # Checked again under the lock: another replica may have migrated in the meantime.
        if not await _has_migrations_table(db):
            await _check_empty(db)
            await db.execute(
                "CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
            )
        done = await _applied(db, migrations)
        applied = []
        for migration in migrations:
            if migration.name in done:
                continue
            for statement in migration.for_postgres():
                await db.execute(statement)
            await db.execute("INSERT INTO migrations (name, applied_at) VALUES ($1, $2)", migration.name, now)
            applied.append(migration.name)
    return applied


async def schema_version(db: Conn) -> list[str]:
    """Return the names of the applied migrations, oldest first (empty for a fresh schema)."""
    if not await _has_migrations_table(db):
        return []
    return [r[0] for r in await db.fetch("SELECT name FROM migrations ORDER BY applied_at, name")]


async def _up_to_date(db: Conn, migrations: Sequence[Migration]) -> bool:
    if not await _has_migrations_table(db):
        return False
    return await _applied(db, migrations) >= {m.name for m in migrations}


async def _has_migrations_table(db: Conn) -> bool:
    # Only the first schema of the search path counts: that is where CREATE TABLE puts our tables.
    return bool(
        await db.fetchval(
            """SELECT EXISTS (SELECT 1 FROM pg_tables
                              WHERE schemaname = current_schema() AND tablename = 'migrations')"""
        )
    )


async def _applied(db: Conn, migrations: Sequence[Migration]) -> set[str]:
    """Return the names recorded as applied, refusing a schema that knows more than we do."""
    done = {r[0] for r in await db.fetch("SELECT name FROM migrations")}
    unknown = sorted(done - {m.name for m in migrations})
    if unknown:
        raise NewerDatabaseError(f"unknown migration {unknown[0]}")
    return done


async def _check_empty(db: Conn) -> None:
    """Refuse a schema that holds another program's tables, so ours never mix with (or clobber) them."""
    schema = await db.fetchval("SELECT current_schema()")
    if schema is None:
        raise ForeignDatabaseError("no schema of the search_path exists to create the tables in")
    tables = await db.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = $1", schema)
    if tables:
        raise ForeignDatabaseError(
            f"schema {schema} holds tables codebot did not create; give codebot its own database or schema"
        )
