"""PostgreSQL: a store call is its own statement and nothing else; no reset round trip on release.

asyncpg's pool resets a connection it takes back with a second query (advisory unlock, CLOSE ALL,
UNLISTEN, RESET ALL) unless told otherwise; nothing the store does leaves session state to undo.
"""

from __future__ import annotations

from typing import Any

from core.store.postgres import PostgresStore
from tests.store.backends import postgres_dsn, postgres_schema
from tests.store.records import KEY


async def test_a_store_call_sends_its_statement_and_no_reset() -> None:
    async with postgres_schema(postgres_dsn()) as dsn:
        store = PostgresStore(dsn, pool_size=1)
        await store.open()
        try:
            sent: list[str] = []
            pool: Any = store._pool  # the one pooled connection, to log what it sends
            async with pool.acquire() as db:
                db.add_query_logger(lambda record: sent.append(record.query))
            sent.clear()
            assert not await store.has_conversation(KEY)
            assert await store.health() == "ok"
            assert len(sent) == 2, sent  # one statement per call
            assert not any("RESET ALL" in q for q in sent)
            async with pool.acquire() as db:  # and the session is as a new one's
                assert await db.fetchval("SHOW synchronous_commit") == "on"
        finally:
            await store.close()
