from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.store.base import Store
from core.store.sqlite import SQLiteStore
from tests.store.backends import Backend, backend_for


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A SQLite file, for the tests of SQLite's own failure modes (locks, corrupt or full files)."""
    return tmp_path / "data" / "codebot.db"


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """Each contract test runs once per backend, on a database of its own."""
    async with backend_for(request.param, tmp_path) as b:
        yield b


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    s = backend.new()
    await s.open()
    yield s
    await s.close()


@pytest.fixture
async def second_store(backend: Backend, store: Store) -> AsyncIterator[Store]:
    """Another store on the same database: its own connections, as another replica would have."""
    s = backend.new()
    await s.open()
    yield s
    await s.close()


@pytest.fixture
async def sqlite_store(db_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(db_path)
    await s.open()
    yield s
    await s.close()
