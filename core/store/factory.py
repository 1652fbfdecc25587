"""Pick the store backend from CODEBOT_DB: a postgresql:// URL or a SQLite file path."""

from __future__ import annotations

from pathlib import Path

from core.store.base import Store
from core.store.postgres_errors import is_postgres_url


def make_store(db: str | Path, *, busy_timeout_s: float = 5.0, pool_size: int = 10) -> Store:
    """Return an unopened store: PostgresStore for postgresql:// or postgres:// URLs, else SQLiteStore."""
    if isinstance(db, str) and is_postgres_url(db):
        from core.store.postgres import PostgresStore  # asyncpg is only imported where it is used

        return PostgresStore(db.strip(), pool_size=pool_size, timeout_s=busy_timeout_s)
    from core.store.sqlite import SQLiteStore

    return SQLiteStore(db, busy_timeout_s=busy_timeout_s)
