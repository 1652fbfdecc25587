"""`codebot admin` works on the PostgreSQL store too (CODEBOT_DB=postgresql://...)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.admin_cli import main
from core.settings import Settings
from tests.store.backends import Backend, postgres_dsn, postgres_schema


@contextlib.contextmanager
def _schema() -> Iterator[str]:
    """A fresh schema for a synchronous test (the CLI runs its own event loop)."""
    cm = postgres_schema(postgres_dsn())
    loop = asyncio.new_event_loop()
    try:
        yield loop.run_until_complete(cm.__aenter__())
    finally:
        loop.run_until_complete(cm.__aexit__(None, None, None))
        loop.close()


def test_set_then_show_and_log_a_limit(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a SQLite file appearing here would mean the URL was not used
    with _schema() as dsn:
        settings = Settings(_env_file=None, CODEBOT_DB=dsn)  # type: ignore[call-arg]
        assert main(["set", "slack:T1", "timeout", "30"], settings) == 0
        assert main(["limits", "slack:T1"], settings) == 0
        assert main(["changes", "slack:T1"], settings) == 0
        stored = asyncio.run(Backend("postgres", dsn).rows("SELECT name, value FROM limits"))
    out = capsys.readouterr().out
    assert "30" in out and "operator" in out.lower()
    assert stored == [("timeout", "30")]
    assert list(tmp_path.iterdir()) == []
