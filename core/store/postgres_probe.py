"""`codebot doctor`'s look at a PostgreSQL database: reachable, schema version, latency; changes nothing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from core.store.migrations import MIGRATIONS, Migration
from core.store.postgres_errors import connect_error, redact, translate
from core.store.postgres_migrate import schema_version

_ROUND_TRIPS = 5


@dataclass(frozen=True)
class Probe:
    where: str  # the DSN with the password hidden
    applied: tuple[str, ...]
    pending: tuple[str, ...]  # known to this code, applied at the next start
    unknown: tuple[str, ...]  # applied by a newer codebot: this code refuses the database
    read_only: bool
    round_trip_ms: float  # median of a few trivial queries

    def summary(self) -> tuple[bool, str]:
        """Return whether the bot can use the database, and one line saying why or why not."""
        if self.unknown:
            return False, f"{self.where}: written by a newer codebot ({self.unknown[0]}); upgrade codebot"
        if self.read_only:
            return False, f"{self.where}: read-only; point CODEBOT_DB at the primary"
        if not self.applied:
            schema = f"empty, {len(self.pending)} migration(s) run at the first start"
        elif self.pending:
            schema = f"{self.applied[-1]}, {len(self.pending)} migration(s) pending (run at the next start)"
        else:
            schema = f"{self.applied[-1]} (up to date)"
        return (
            True,
            f"PostgreSQL {self.where}: reachable, schema {schema}, {self.round_trip_ms:.1f} ms round trip",
        )


async def probe(dsn: str, timeout_s: float = 5.0, migrations: Sequence[Migration] = MIGRATIONS) -> Probe:
    """Connect once, read the migrations table and time a few round trips.

    Raises:
        StoreError: the server cannot be reached or refuses the login (message without the password).
    """
    try:
        db = await asyncpg.connect(dsn, timeout=timeout_s, command_timeout=timeout_s)
    except Exception as exc:
        raise connect_error(exc, dsn) from None
    try:
        applied = await schema_version(db)
        read_only = await db.fetchval("SELECT current_setting('transaction_read_only')") == "on"
        times = []
        for _ in range(_ROUND_TRIPS):
            start = time.perf_counter()
            await db.fetchval("SELECT 1")
            times.append((time.perf_counter() - start) * 1000)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
        raise translate(exc, dsn) from exc
    finally:
        await db.close()
    known = [m.name for m in migrations]
    return Probe(
        where=redact(dsn),
        applied=tuple(applied),
        pending=tuple(n for n in known if n not in applied),
        unknown=tuple(n for n in applied if n not in known),
        read_only=read_only,
        round_trip_ms=statistics.median(times),
    )
