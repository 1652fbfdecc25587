"""Shared pieces for the workspace tests: a real SQLite store in tmp_path, a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.store.sqlite import SQLiteStore
from core.types import ThreadKey

KEY = ThreadKey("console", "local", "console", "t1")
OTHER = ThreadKey("console", "local", "console", "t2")


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "codebot.db")
    await s.open()
    yield s
    await s.close()
