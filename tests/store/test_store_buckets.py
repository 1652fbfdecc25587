"""Rate-limit slots and sliding-window totals, with a controlled clock and concurrent callers."""

from __future__ import annotations

import asyncio

from core.store.base import Store
from tests.store.backends import Backend
from tests.store.processes import race

HOUR = 3600.0


async def test_slots_free_up_as_the_window_slides(store: Store) -> None:
    for t in (0.0, 600.0, 1200.0):
        assert (await store.take_slot("runs:U1", 3, HOUR, now=t)).granted

    refused = await store.take_slot("runs:U1", 3, HOUR, now=1800.0)
    assert (refused.granted, refused.used, refused.limit, refused.resets_at) == (False, 3, 3, HOUR)
    assert not (await store.take_slot("runs:U1", 3, HOUR, now=HOUR - 0.1)).granted

    freed = await store.take_slot("runs:U1", 3, HOUR, now=HOUR)  # the slot taken at 0 has left
    assert (freed.granted, freed.used, freed.resets_at) == (True, 3, 600.0 + HOUR)
    assert not (await store.take_slot("runs:U1", 3, HOUR, now=HOUR + 1)).granted


async def test_first_slot_resets_a_window_after_it(store: Store) -> None:
    first = await store.take_slot("runs:U1", 5, HOUR, now=50.0)
    assert (first.granted, first.used, first.resets_at) == (True, 1, 50.0 + HOUR)


async def test_buckets_are_independent(store: Store) -> None:
    assert (await store.take_slot("runs:U1", 1, HOUR, now=0.0)).granted
    assert not (await store.take_slot("runs:U1", 1, HOUR, now=1.0)).granted
    assert (await store.take_slot("runs:U2", 1, HOUR, now=1.0)).granted


async def test_zero_limit_never_grants(store: Store) -> None:
    result = await store.take_slot("runs:T1", 0, HOUR, now=10.0)
    assert (result.granted, result.used, result.resets_at) == (False, 0, 10.0 + HOUR)


async def test_last_slot_goes_to_exactly_one_caller_across_connections(
    store: Store, second_store: Store
) -> None:
    # 50 callers over two stores, each with a pool of connections on PostgreSQL, race for 5 slots.
    calls = [(store if n % 2 else second_store).take_slot("runs:T1", 5, HOUR, 100.0) for n in range(50)]
    results = await asyncio.gather(*calls)

    granted = [r for r in results if r.granted]
    assert len(granted) == 5
    assert all(1 <= r.used <= 5 for r in granted)  # read after the decision, so others may be counted
    assert all(r.used == 5 for r in results if not r.granted)
    assert await store.bucket_total("runs:T1", HOUR, 100.0) == 5


_TAKER = """
import asyncio, sys
from core.store.factory import make_store

async def main():
    store = make_store(sys.argv[1])
    await store.open()
    try:
        results = await asyncio.gather(*(store.take_slot("runs:P", 5, 3600.0, 1.0) for _ in range(10)))
    finally:
        await store.close()  # an unclosed aiosqlite connection keeps the process alive
    print(sum(r.granted for r in results))

asyncio.run(main())
"""


async def test_last_slot_goes_to_exactly_one_caller_across_processes(backend: Backend) -> None:
    store = backend.new()
    await store.open()
    await store.close()
    assert sum(await race(_TAKER, backend.target, processes=3)) == 5


async def test_bucket_totals_slide(store: Store) -> None:
    await store.add_to_bucket("tokens:T1", 300, 86400.0, now=0.0)
    assert await store.bucket_total("tokens:T1", 86400.0, now=0.0) == 300
    await store.add_to_bucket("tokens:T1", 200, 86400.0, now=3600.0)
    await store.add_to_bucket("tokens:T2", 7, 86400.0, now=3600.0)
    assert await store.bucket_total("tokens:T1", 86400.0, now=3600.0) == 500
    assert await store.bucket_total("tokens:T2", 86400.0, now=3600.0) == 7

    assert await store.bucket_total("tokens:T1", 86400.0, now=86399.0) == 500
    assert await store.bucket_total("tokens:T1", 86400.0, now=86400.0) == 200
    assert await store.bucket_total("tokens:T1", 86400.0, now=90000.0) == 0
    assert await store.bucket_total("tokens:none", 86400.0, now=0.0) == 0


async def test_rows_that_left_every_window_are_swept(store: Store, backend: Backend) -> None:
    for n in range(30):
        await store.take_slot(f"runs:U{n}", 5, 60.0, now=0.0)
    await store.add_to_bucket("tokens:T1", 10, 86400.0, now=0.0)
    await store.take_slot("runs:U0", 5, 60.0, now=120.0)

    rows = await backend.rows("SELECT bucket, at FROM buckets ORDER BY bucket")
    assert rows == [("runs:U0", 120.0), ("tokens:T1", 0.0)]
