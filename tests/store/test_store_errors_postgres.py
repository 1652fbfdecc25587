"""PostgreSQL failures give the same kind of short StoreError as SQLite's, and never show the password."""

from __future__ import annotations

import asyncio
import logging
import socket
import traceback
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from bot.doctor import store_line
from core.settings import Settings
from core.store.base import StoreError
from core.store.postgres import PostgresStore
from core.store.postgres_errors import redact
from tests.store.backends import postgres_dsn, postgres_schema
from tests.store.records import KEY, turn

SECRET = "Sup3r-s3cret-pw"  # distinctive, so finding it anywhere means it leaked


@pytest.fixture
async def dsn() -> str:
    """A DSN whose schema is this test's own."""
    async with postgres_schema(postgres_dsn()) as d:
        yield d  # type: ignore[misc]


def _with(dsn: str, *, password: str | None = None, port: int | None = None, db: str | None = None) -> str:
    parts = urlsplit(dsn)
    user = parts.username or ""
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user}:{parts.password if password is None else password}@{host}:{port or parts.port or 5432}"
    return urlunsplit((parts.scheme, netloc, parts.path if db is None else f"/{db}", parts.query, ""))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _open_error(dsn: str) -> StoreError:
    store = PostgresStore(dsn, timeout_s=5.0)
    with pytest.raises(StoreError) as caught:
        await store.open()
    assert await store.health() == "the store is not open"
    return caught.value


def _everything_said(error: BaseException) -> str:
    """The message and the whole traceback chain, as a log line with exc_info would show it."""
    return "".join(traceback.format_exception(error))


async def test_unreachable_server_is_named_without_the_password(dsn: str) -> None:
    error = await _open_error(_with(dsn, password=SECRET, port=_free_port()))
    assert str(error).startswith("cannot reach the PostgreSQL server (CODEBOT_DB=postgresql://")
    assert ":***@127.0.0.1:" in str(error)
    assert SECRET not in _everything_said(error)


async def test_wrong_password_is_named_without_the_password(dsn: str) -> None:
    error = await _open_error(_with(dsn, password=SECRET))
    assert str(error).startswith("PostgreSQL refused the login")
    assert "check the user name and password" in str(error)
    assert SECRET not in _everything_said(error)


async def test_missing_database_is_named(dsn: str) -> None:
    error = await _open_error(_with(dsn, db="no_such_codebot_db"))
    assert "database does not exist" in str(error)


async def test_read_only_database_fails_the_first_migration_plainly(dsn: str) -> None:
    error = await _open_error(dsn + "&default_transaction_read_only=on")
    assert "read-only" in str(error) and "not a standby or a read-only role" in str(error)


async def test_read_only_database_keeps_reads_refuses_writes_and_health_says_so(dsn: str) -> None:
    writable = PostgresStore(dsn)
    await writable.open()
    await writable.commit_turn(turn(KEY, "e1", ["kept"]))
    await writable.close()

    store = PostgresStore(dsn + "&default_transaction_read_only=on")
    await store.open()  # up to date: opening only reads
    try:
        assert await store.load_messages(KEY, 10) == ["kept"]
        with pytest.raises(StoreError, match="read-only"):
            await store.commit_turn(turn(KEY, "e2", ["lost?"]))
        with pytest.raises(StoreError, match="read-only"):
            await store.claim_event("slack", "Ev1", now=1.0, ttl_s=60.0)
        assert "read-only" in await store.health()
        assert await store.load_messages(KEY, 10) == ["kept"]
    finally:
        await store.close()


async def test_a_dropped_connection_fails_one_call_plainly_and_the_pool_recovers(dsn: str) -> None:
    store = PostgresStore(dsn, pool_size=1)
    await store.open()
    other = PostgresStore(dsn)
    await other.open()
    try:
        await store.commit_turn(turn(KEY, "e1", ["kept"]))
        async with store._conn() as db:
            pid = await db.fetchval("SELECT pg_backend_pid()")
        # The server ends the store's only connection, as a PostgreSQL restart or failover would.
        async with other._conn() as db:
            assert await db.fetchval("SELECT pg_terminate_backend($1)", pid)
        results = []
        for _ in range(3):
            try:
                results.append(await store.load_messages(KEY, 10))
            except StoreError as exc:
                results.append(str(exc))
        assert results[-1] == ["kept"]
        assert all(r == ["kept"] or "lost the connection to PostgreSQL" in r for r in results)
        assert await store.health() == "ok"
    finally:
        await other.close()
        await store.close()


async def test_a_connection_the_driver_already_gave_back_still_fails_plainly(dsn: str) -> None:
    # When the server ends a connection mid-call, asyncpg may hand it back to the pool before the store
    # sees the error; discarding it then must not turn the clear StoreError into a driver error.
    store = PostgresStore(dsn, pool_size=1)
    await store.open()
    try:
        with pytest.raises(StoreError, match="lost the connection to PostgreSQL"):
            async with store._conn() as db:
                assert store._pool is not None
                await store._pool.release(db)
                raise asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")
        assert await store.health() == "ok"
    finally:
        await store.close()


async def test_the_pool_never_opens_more_than_its_size(dsn: str) -> None:
    store = PostgresStore(dsn, pool_size=3)
    await store.open()
    try:
        results = await asyncio.gather(*(store.take_slot("runs:U1", 100, 60.0, 1.0) for _ in range(60)))
        assert sum(r.granted for r in results) == 60
        opened, most = store.pool_usage()
        assert most == 3 and 1 <= opened <= 3
    finally:
        await store.close()
    assert store.pool_usage() == (0, 3)


async def test_closed_store_says_so(dsn: str) -> None:
    store = PostgresStore(dsn)
    with pytest.raises(StoreError, match="not open"):
        await store.load_messages(KEY, 10)
    await store.open()
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="not open"):
        await store.claim_event("slack", "e1", now=0.0, ttl_s=1.0)


async def test_the_password_appears_in_no_error_log_line_or_doctor_output(
    dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # asyncpg's own loggers included
    said: list[str] = []
    for bad in (_with(dsn, password=SECRET), _with(dsn, password=SECRET, port=_free_port())):
        error = await _open_error(bad)
        logging.getLogger("codebot.test").exception("store failed", exc_info=error)
        said.append(_everything_said(error))
        settings = Settings(_env_file=None, db=bad)  # type: ignore[call-arg]
        said.append(await store_line(settings))
        said.append(repr(settings) + str(settings.model_dump()))
    good = PostgresStore(_with(dsn, password=urlsplit(dsn).password))
    said.append(good.path)

    assert SECRET not in "\n".join(said) + caplog.text
    assert all("***" in line for line in said[1::3])  # doctor names the server, not the password


def test_redact_hides_passwords_in_the_url_and_its_parameters() -> None:
    assert (
        redact("postgresql://bot:pw@db.internal:5432/codebot")
        == "postgresql://bot:***@db.internal:5432/codebot"
    )
    assert redact("postgres://bot@db/codebot?password=pw&sslmode=require") == (
        "postgres://bot@db/codebot?password=***&sslmode=require"
    )
    assert "pw" not in redact("postgresql://bot:p%40w@[::1]:5432/codebot")


async def test_concurrent_opens_build_one_pool(dsn: str) -> None:
    name = f"codebot-{uuid.uuid4().hex[:8]}"  # this test's connections, among any other session's
    store = PostgresStore(f"{dsn}&application_name={name}", pool_size=2)
    await asyncio.gather(*(store.open() for _ in range(5)))
    count = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
    try:
        assert store.pool_usage() == (2, 2)
        async with store._conn() as db:
            assert await db.fetchval(count, name) == 2
    finally:
        await store.close()
    assert store.pool_usage() == (0, 2)


async def test_an_exhausted_pool_says_so_within_the_timeout(dsn: str) -> None:
    store = PostgresStore(dsn, pool_size=1, timeout_s=0.3)
    await store.open()
    try:
        async with store._conn():  # the only connection, busy with something long
            with pytest.raises(StoreError, match="all 1 database connections stayed busy") as caught:
                await store.load_messages(KEY, 10)
        assert "CODEBOT_DB_POOL_SIZE" in str(caught.value) and ":***@" in str(caught.value)
        assert await store.load_messages(KEY, 10) == []  # free again
    finally:
        await store.close()
