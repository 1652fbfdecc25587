from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.store.sqlite import SQLiteStore


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "codebot.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(db_path)
    await s.open()
    yield s
    await s.close()


@pytest.fixture
async def second_store(db_path: Path, store: SQLiteStore) -> AsyncIterator[SQLiteStore]:
    """Another store on the same file: its own connection, as another replica would have."""
    s = SQLiteStore(db_path)
    await s.open()
    yield s
    await s.close()
