"""Event de-duplication: one claim wins, across restarts, connections and processes, until the ttl."""

from __future__ import annotations

import asyncio

from core.store.base import Store
from tests.store.backends import Backend
from tests.store.processes import race

TTL = 60.0


async def test_first_claim_wins_per_platform(store: Store) -> None:
    assert await store.claim_event("slack", "Ev1", now=0.0, ttl_s=TTL)
    assert not await store.claim_event("slack", "Ev1", now=1.0, ttl_s=TTL)
    assert await store.claim_event("discord", "Ev1", now=1.0, ttl_s=TTL)
    assert await store.claim_event("slack", "Ev2", now=1.0, ttl_s=TTL)


async def test_claims_survive_a_restart(backend: Backend) -> None:
    store = backend.new()
    await store.open()
    assert await store.claim_event("slack", "Ev1", now=0.0, ttl_s=TTL)
    await store.close()

    again = backend.new()
    await again.open()
    try:
        assert not await again.claim_event("slack", "Ev1", now=10.0, ttl_s=TTL)
    finally:
        await again.close()


async def test_claim_expires_after_ttl(store: Store) -> None:
    assert await store.claim_event("slack", "Ev1", now=100.0, ttl_s=TTL)
    assert not await store.claim_event("slack", "Ev1", now=159.9, ttl_s=TTL)
    assert await store.claim_event("slack", "Ev1", now=160.0, ttl_s=TTL)
    assert not await store.claim_event("slack", "Ev1", now=200.0, ttl_s=TTL)  # the new claim runs to 220


async def test_expired_events_are_swept(store: Store, backend: Backend) -> None:
    for n in range(50):
        await store.claim_event("slack", f"old{n}", now=0.0, ttl_s=1.0)
    await store.claim_event("slack", "new", now=10.0, ttl_s=1.0)

    assert await backend.rows("SELECT event_id FROM events") == [("new",)]


async def test_concurrent_claims_from_two_connections_yield_one_winner(
    store: Store, second_store: Store
) -> None:
    claims = [(store if n % 2 else second_store).claim_event("slack", "EvX", 5.0, TTL) for n in range(40)]
    results = await asyncio.gather(*claims)
    assert results.count(True) == 1

    distinct = [(store if n % 2 else second_store).claim_event("slack", f"E{n}", 5.0, TTL) for n in range(40)]
    assert all(await asyncio.gather(*distinct))


_CLAIMER = """
import asyncio, sys
from core.store.factory import make_store

async def main():
    store = make_store(sys.argv[1])
    await store.open()
    try:
        won = await asyncio.gather(*(store.claim_event("slack", "EvP", 5.0, 60.0) for _ in range(10)))
    finally:
        await store.close()  # an unclosed aiosqlite connection keeps the process alive
    print(sum(won))

asyncio.run(main())
"""


async def test_concurrent_claims_from_separate_processes_yield_one_winner(backend: Backend) -> None:
    store = backend.new()
    await store.open()  # create the schema first so the processes race only on the claim
    await store.close()
    assert sum(await race(_CLAIMER, backend.target, processes=3)) == 1
