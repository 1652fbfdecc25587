"""PostgreSQL: only rows a crash may harmlessly forget commit without waiting for the disk.

Lease renewals, queue tickets, rate-limit counts and a run's saved state commit with synchronous_commit
off for their own transaction; claims, turn starts, history and audit keep the server's durable
default. Each statement runs inside an explicit transaction here, so the setting it left can be read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from core.store import postgres_commit as commit
from core.store import postgres_history as history
from core.store import postgres_leases as leases
from core.store import postgres_ledger as ledger
from core.store import postgres_threads as threads
from core.store import postgres_turns as turns
from core.store.base import RunCheck, ThreadState, TurnBegin, Window, Workspace
from core.store.postgres import PostgresStore
from tests.store.backends import postgres_dsn, postgres_schema
from tests.store.records import KEY, turn

WS = Workspace("slack", "T1")


@pytest.fixture
async def db() -> AsyncIterator[Any]:
    """A raw connection to a migrated schema of its own."""
    async with postgres_schema(postgres_dsn()) as dsn:
        store = PostgresStore(dsn)
        await store.open()
        conn = await asyncpg.connect(dsn, timeout=30)
        try:
            yield conn
        finally:
            await conn.close()
            await store.close()


async def commits_with(db: Any, call: Callable[[Any], Awaitable[object]]) -> str:
    async with db.transaction():
        await call(db)
        return str(await db.fetchval("SHOW synchronous_commit"))


async def test_renewals_tickets_and_counts_skip_the_flush(db: Any) -> None:
    await turns.start_turn_leased(db, KEY, "ev1", "U1", "q", 100.0, "replica-a", 60.0, 2)
    ticket, _ = await leases.gate_enter(db, WS, "replica-a", 2, 100.0, 60.0)
    relaxed = [
        lambda c: turns.renew_turn(c, "ev1", "replica-a", 110.0, 60.0),
        lambda c: leases.gate_enter(c, WS, "replica-b", 2, 110.0, 60.0),
        lambda c: leases.gate_poll(c, ticket, WS, 2, 110.0, 60.0),
        lambda c: leases.gate_leave(c, ticket),
        lambda c: ledger.add(c, "tokens:T1", 5, 86400.0, 110.0),
        lambda c: ledger.take_slot(c, "runs:U1", 3, 3600.0, 110.0),
        lambda c: threads.save_state(c, KEY, ThreadState(b"s", 1), 110.0),  # its turn's commit flushes it
    ]
    assert [await commits_with(db, call) for call in relaxed] == ["off"] * len(relaxed)


async def test_claims_starts_and_commits_stay_durable(db: Any) -> None:
    durable = [
        lambda c: history.claim_event(c, "slack", "ev2", 100.0, 3600.0),
        lambda c: turns.start_turn_leased(c, KEY, "ev2", "U1", "q", 100.0, "replica-a", 60.0, None),
        lambda c: commit.commit_turn(c, turn(KEY, "ev2", ["q", "a"], at=101.0)),
        # claim, admission and start in one: the counts inside it do not take the claim's flush away
        lambda c: turns.begin_turn(c, question("ev3", user_limit=1)),
        lambda c: turns.begin_turn(c, question("ev4", user_limit=1)),  # refused: its claim is flushed too
    ]
    assert [await commits_with(db, call) for call in durable] == ["on"] * len(durable)


def question(event: str, user_limit: int) -> TurnBegin:
    runs = RunCheck(
        Window("tokens:T1", 1000, 86400.0),
        Window("runs:T1", 10, 86400.0),
        Window("runs:U1", user_limit, 3600.0),
        100.0,
    )
    return TurnBegin(KEY, event, "U1", "q", 100.0, 3600.0, 0, runs, "replica-a", 60.0, None)
