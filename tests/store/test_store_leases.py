"""Leases replicas share: the workspace queue's tickets and per-thread locks (both backends)."""

from __future__ import annotations

import asyncio

from core.store.base import Store, Workspace
from tests.store.records import KEY, WS, key

LEASE = 60.0


async def test_tickets_are_admitted_up_to_the_cap_in_arrival_order(store: Store, second_store: Store) -> None:
    entered = [
        await (store, second_store)[n % 2].gate_enter(WS, f"r{n % 2}", 2, 0.0, LEASE) for n in range(4)
    ]
    assert [position for _, position in entered] == [0, 0, 1, 2]  # a free slot costs one call
    tickets = [ticket for ticket, _ in entered]
    assert await store.gate_counts(WS, 1.0) == (2, 2)
    assert await store.gate_poll(tickets[3], WS, 2, 1.0, LEASE) == 2

    await second_store.gate_leave(tickets[1])
    assert await store.gate_poll(tickets[3], WS, 2, 2.0, LEASE) == 2  # the next in line goes first
    assert await store.gate_poll(tickets[2], WS, 2, 2.0, LEASE) == 0
    assert await store.gate_poll(tickets[3], WS, 2, 2.0, LEASE) == 1
    assert await store.gate_counts(Workspace("slack", "other"), 2.0) == (0, 0)


async def test_a_dead_holders_slot_frees_when_its_lease_ends(store: Store) -> None:
    dead, running = await store.gate_enter(WS, "dead", 1, 0.0, 10.0)
    alive, queued = await store.gate_enter(WS, "alive", 1, 1.0, 10.0)
    assert (running, queued) == (0, 1)
    assert await store.gate_poll(alive, WS, 1, 9.9, 10.0) == 1  # renews alive's lease to 19.9

    assert await store.gate_poll(alive, WS, 1, 10.0, 10.0) == 0  # dead never renewed: gone at 10
    assert await store.gate_poll(dead, WS, 1, 10.5, 10.0) is None  # a late poll learns it lost its place
    assert await store.gate_counts(WS, 10.5) == (1, 0)


async def test_racing_polls_never_admit_more_than_the_cap(store: Store, second_store: Store) -> None:
    # Twelve replicas' turns enter at once for three slots: exactly three run, the rest have places.
    enters = [(store, second_store)[n % 2].gate_enter(WS, f"r{n}", 3, 1.0, LEASE) for n in range(12)]
    entered = sorted(await asyncio.gather(*enters))
    assert sum(position == 0 for _, position in entered) == 3
    assert await store.gate_counts(WS, 1.0) == (3, 9)
    # Polled in any order, the waiters stay behind the runners, in ticket order.
    waiting = [ticket for ticket, position in entered if position]
    polls = [(store, second_store)[n % 2].gate_poll(t, WS, 3, 2.0, LEASE) for n, t in enumerate(waiting)]
    assert await asyncio.gather(*polls) == list(range(1, 10))


async def test_a_thread_lock_has_one_owner_until_released_or_expired(
    store: Store, second_store: Store
) -> None:
    assert await store.lock_thread(KEY, "a", 0.0, 10.0)
    assert not await second_store.lock_thread(KEY, "b", 1.0, 10.0)
    assert await second_store.lock_thread(key("other"), "b", 1.0, 10.0)  # other threads are free
    assert await store.lock_thread(KEY, "a", 5.0, 10.0)  # the owner renews: now runs to 15

    assert not await second_store.lock_thread(KEY, "b", 14.9, 10.0)
    await second_store.release_thread(KEY, "b")  # not b's: nothing happens
    assert not await second_store.lock_thread(KEY, "b", 14.9, 10.0)
    assert await second_store.lock_thread(KEY, "b", 15.0, 10.0)  # a stopped renewing: expired
    assert not await store.lock_thread(KEY, "a", 16.0, 10.0)

    await second_store.release_thread(KEY, "b")
    assert await store.lock_thread(KEY, "a", 16.0, 10.0)


async def test_racing_takers_of_a_free_thread_lock_yield_one_owner(store: Store, second_store: Store) -> None:
    takes = [(store, second_store)[n % 2].lock_thread(KEY, f"o{n}", 1.0, LEASE) for n in range(30)]
    assert (await asyncio.gather(*takes)).count(True) == 1
