"""Turn leases (issue 15), both backends: a turn's lease, its thread lock, and the takeover of dead ones."""

from __future__ import annotations

import asyncio

from core.store.base import Store, TurnStart
from tests.store.backends import Backend
from tests.store.records import KEY, WS, key, turn

LEASE = 10.0
TAKEN = "interrupted: its replica stopped"


async def start(store: Store, event: str, now: float, owner: str = "a", k=KEY) -> bool:
    started = await store.start_turn_leased(k, event, "U1", f"question {event}", now, owner, LEASE)
    assert started.ticket is None  # no cap given: no workspace ticket
    return started.holds_thread


async def test_a_started_turn_holds_its_thread_until_it_commits(store: Store, second_store: Store) -> None:
    assert await start(store, "e1", 0.0) is True
    assert await start(second_store, "e2", 1.0, owner="b") is False  # the thread is busy
    assert await start(second_store, "e3", 1.0, owner="b", k=key("other")) is True  # other threads are not
    await store.commit_turn(turn(KEY, "e1", ["m"], at=2.0))
    assert await second_store.lock_thread(KEY, "e2", 2.0, LEASE) is True  # freed by the commit itself


async def test_abandoning_a_turn_frees_its_thread(store: Store) -> None:
    await start(store, "e1", 0.0)
    await store.abandon_turn("e1", "shutdown", 1.0)
    assert await start(store, "e2", 1.0) is True


async def test_a_renewal_after_the_turn_finished_says_so(store: Store) -> None:
    await start(store, "e1", 0.0)
    await start(store, "e2", 0.0, k=key("t2"))
    await store.commit_turn(turn(KEY, "e1", ["m"], at=1.0))
    await store.abandon_turn("e2", "shutdown", 1.0)
    assert await store.renew_turn("e1", "a", 2.0, LEASE) == ("finished", False)
    assert await store.renew_turn("e2", "a", 2.0, LEASE) == ("finished", False)


async def test_renewal_keeps_a_live_turn_from_being_taken_over(store: Store, second_store: Store) -> None:
    await start(store, "e1", 0.0)
    assert await store.renew_turn("e1", "a", 9.0, LEASE) == ("renewed", True)  # lease now until 19
    assert await second_store.take_over_turns(15.0, TAKEN) == []
    assert await start(second_store, "e2", 15.0, owner="b") is False


async def test_only_expired_turns_are_taken_over_and_their_threads_freed(
    store: Store, second_store: Store
) -> None:
    await start(store, "dead", 0.0, owner="a")
    await start(second_store, "alive", 5.0, owner="b", k=key("t2"))
    taken = await second_store.take_over_turns(10.0, TAKEN)
    assert taken == [(KEY, "dead", "question dead")]
    assert [e for _, e, _ in await store.unfinished_turns()] == ["alive"]
    assert await second_store.lock_thread(KEY, "next", 10.0, LEASE) is True
    # The paused owner learns on its next renewal that it lost the turn; it must not answer.
    assert await store.renew_turn("dead", "a", 10.5, LEASE) == ("lost", False)
    assert await second_store.take_over_turns(11.0, TAKEN) == []  # reported once


async def test_a_renewal_with_the_wrong_owner_does_not_extend_the_lease(store: Store) -> None:
    await start(store, "e1", 0.0, owner="a")
    assert await store.renew_turn("e1", "b", 5.0, LEASE) == ("lost", False)
    assert [e for _, e, _ in await store.take_over_turns(10.0, TAKEN)] == ["e1"]


async def test_a_turn_that_lost_its_thread_lock_is_told_on_renewal(store: Store, second_store: Store) -> None:
    await start(store, "e1", 0.0)
    assert await second_store.lock_thread(KEY, "e2", 10.0, LEASE) is True  # e1's lock lease ran out
    assert await store.renew_turn("e1", "a", 10.0, LEASE) == ("renewed", False)


async def test_takeover_can_be_limited_to_platforms_and_to_everything(store: Store) -> None:
    await start(store, "s1", 0.0)
    await start(store, "d1", 0.0, k=key("t9", platform="discord"))
    await start(store, "s2", 100.0, k=key("t3"))  # live
    assert [e for _, e, _ in await store.take_over_turns(20.0, TAKEN, platforms=["discord"])] == ["d1"]
    assert await store.take_over_turns(20.0, TAKEN, platforms=[]) == []
    # One process per SQLite file: at start-up every started turn is a crash's leftover.
    assert [e for _, e, _ in await store.take_over_turns(20.0, TAKEN, expired_only=False)] == ["s1", "s2"]


async def test_turns_from_before_leases_count_as_expired(store: Store) -> None:
    await store.start_turn(KEY, "old", "U1", "from an older codebot", 0.0)
    assert [e for _, e, _ in await store.take_over_turns(1.0, TAKEN)] == ["old"]


async def test_racing_takeovers_give_each_turn_to_exactly_one_replica(backend: Backend) -> None:
    stores = [backend.new() for _ in range(3)]
    for s in stores:
        await s.open()
    try:
        for n in range(20):
            await start(stores[0], f"e{n}", 0.0, k=key(f"t{n}"))
        results = await asyncio.gather(*(s.take_over_turns(50.0, TAKEN) for s in stores))
    finally:
        for s in stores:
            await s.close()
    events = sorted(e for taken in results for _, e, _ in taken)
    assert events == sorted(f"e{n}" for n in range(20))  # none twice, none missed


async def test_a_renewal_racing_a_takeover_either_keeps_or_loses_the_turn(backend: Backend) -> None:
    a, b = backend.new(), backend.new()
    await a.open()
    await b.open()
    try:
        for n in range(10):
            await start(a, f"e{n}", 0.0, k=key(f"t{n}"))
        renewals = [a.renew_turn(f"e{n}", "a", 10.0, LEASE) for n in range(10)]
        outcome = await asyncio.gather(b.take_over_turns(10.0, TAKEN), *renewals)
    finally:
        await a.close()
        await b.close()
    taken = {e for _, e, _ in outcome[0]}
    kept = {f"e{n}" for n, (status, _) in enumerate(outcome[1:]) if status == "renewed"}
    lost = {f"e{n}" for n, (status, _) in enumerate(outcome[1:]) if status == "lost"}
    assert taken.isdisjoint(kept) and taken | kept == {f"e{n}" for n in range(10)}
    assert lost == taken  # every replica that lost a turn learns it on that renewal


async def test_a_start_that_gets_its_thread_also_queues_its_workspace_ticket(
    store: Store, second_store: Store
) -> None:
    first = await store.start_turn_leased(KEY, "e1", "U1", "q1", 0.0, "a", LEASE, cap=1)
    assert first.holds_thread and first.ticket is not None and first.position == 0  # running at once
    other = await second_store.start_turn_leased(key("t2"), "e2", "U1", "q2", 1.0, "b", LEASE, cap=1)
    assert other.holds_thread and other.ticket is not None and other.position == 1  # queued behind e1
    assert await store.gate_counts(WS, 1.0) == (1, 1)
    same_thread = await second_store.start_turn_leased(KEY, "e3", "U1", "q3", 1.0, "b", LEASE, cap=1)
    assert same_thread == TurnStart(False)  # waits for the thread first: no slot held meanwhile
    await store.gate_leave(first.ticket)
    assert await second_store.gate_poll(other.ticket, WS, 1, 2.0, LEASE) == 0
