"""CODEBOT_DB picks the backend: a postgresql:// or postgres:// URL is PostgreSQL, anything else a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.doctor import store_line
from core.settings import Settings
from core.store.factory import make_store
from core.store.migrations import MIGRATIONS
from core.store.postgres import PostgresStore
from core.store.sqlite import SQLiteStore
from tests.store.backends import ENV, postgres_dsn, postgres_schema


@pytest.mark.parametrize(
    "url", ["postgresql://bot:pw@db:5432/codebot", "postgres://bot@db/codebot", " PostgreSQL://x/y"]
)
def test_a_postgres_url_selects_postgres_and_is_kept_verbatim(url: str) -> None:
    settings = Settings(_env_file=None, CODEBOT_DB=url)  # type: ignore[call-arg]
    assert settings.database == url.strip()
    assert settings.db == Path("codebot.db")  # file-path users never see the URL
    store = make_store(settings.database, pool_size=settings.db_pool_size)
    assert isinstance(store, PostgresStore)
    assert "pw" not in store.path


@pytest.mark.parametrize("value", ["codebot.db", "/srv/codebot/data.db", "postgresql.db", "./postgres://x"])
def test_anything_else_is_a_sqlite_file(value: str) -> None:
    settings = Settings(_env_file=None, CODEBOT_DB=value)  # type: ignore[call-arg]
    assert settings.database == Path(value)
    assert isinstance(make_store(settings.database), SQLiteStore)


def test_pool_size_is_a_bounded_setting() -> None:
    assert Settings(_env_file=None).db_pool_size == 10  # type: ignore[call-arg]
    assert Settings(_env_file=None, CODEBOT_DB_POOL_SIZE="3").db_pool_size == 3  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        Settings(_env_file=None, CODEBOT_DB_POOL_SIZE="0")  # type: ignore[call-arg]


def test_postgres_tests_fail_loudly_in_ci_without_a_server() -> None:
    with pytest.raises(pytest.fail.Exception, match="not set in CI"):
        postgres_dsn({"CI": "true"})
    with pytest.raises(pytest.skip.Exception):
        postgres_dsn({})
    assert postgres_dsn({ENV: "postgresql://x/y", "CI": "true"}) == "postgresql://x/y"


async def test_doctor_reports_reachability_schema_and_latency() -> None:
    async with postgres_schema(postgres_dsn()) as dsn:
        settings = Settings(_env_file=None, CODEBOT_DB=dsn)  # type: ignore[call-arg]
        fresh = await store_line(settings)
        assert fresh.startswith("[ok] store: PostgreSQL postgresql://")
        assert f"empty, {len(MIGRATIONS)} migration(s) run at the first start" in fresh
        assert "testpw" not in fresh and ":***@" in fresh

        store = PostgresStore(dsn)
        await store.open()
        await store.close()
        line = await store_line(settings)
        assert f"schema {MIGRATIONS[-1].name} (up to date)" in line and " ms round trip" in line

        ro = Settings(_env_file=None, CODEBOT_DB=dsn + "&default_transaction_read_only=on")  # type: ignore[call-arg]
        assert (await store_line(ro)).startswith("[!!] store:")
