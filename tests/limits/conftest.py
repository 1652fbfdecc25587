"""Shared pieces for the limits tests: a real SQLite store in tmp_path and a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.limits import LimitDefaults, LimitsEngine
from core.store.base import AuditRecord, Turn, UsageRecord, Workspace
from core.store.sqlite import SQLiteStore
from core.types import Author, Incoming, ThreadKey

# Thursday 26 November 2026, 14:00 UTC: mid-week, mid-day, so day and week boundaries are clear.
START = datetime(2026, 11, 26, 14, 0, tzinfo=UTC).timestamp()
WS = Workspace("slack", "T1")


class Clock:
    """A clock that only moves when the test says so."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "codebot.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(db_path)
    await s.open()
    yield s
    await s.close()


@pytest.fixture
def engine(store: SQLiteStore, clock: Clock) -> LimitsEngine:
    return LimitsEngine(store, LimitDefaults(), clock)


def incoming(
    user: str = "U1",
    *,
    workspace: str = "T1",
    channel: str = "C1",
    event: str = "e1",
    platform: str = "slack",
) -> Incoming:
    """Return a question from `user` in a thread of `channel`."""
    key = ThreadKey(platform, workspace, channel, "1700000000.000100")
    return Incoming(key, Author(user, f"name-{user}"), "what is 2+2", event)


def audit(
    key: ThreadKey, *, user: str = "U1", at: float = START, code: str = "print(1)", **kw: object
) -> AuditRecord:
    """Return an execution record; keyword arguments override the verdict and outcome."""
    fields: dict[str, object] = dict(
        allowed=True, risk="low", reasons="", outcome="ok", exit_code=0, duration_ms=120.0, step=1
    )
    fields.update(kw)
    return AuditRecord(key=key, user_id=user, at=at, code=code, **fields)  # type: ignore[arg-type]


def turn(
    key: ThreadKey,
    event_id: str,
    *,
    user: str = "U1",
    at: float = START,
    audits: Sequence[AuditRecord] = (),
    messages: Sequence[str] = (),
    tokens: int = 0,
    refusals: int = 0,
    sandbox_ms: float = 0.0,
) -> Turn:
    """Return a finished turn as the core commits it."""
    runs = sum(1 for a in audits if a.allowed)
    usage = UsageRecord(Workspace.of(key), user, at, runs, refusals, tokens, sandbox_ms)
    return Turn(key, event_id, tuple(messages), tuple(audits), usage)
