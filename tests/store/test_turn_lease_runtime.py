"""core.lease over a real store (both backends): a lost lease stops the turn and silences its sink."""

from __future__ import annotations

import asyncio
import time

import pytest

from core.lease import TurnLeases
from core.limits.store_gate import StoreGate
from core.store.base import Store
from core.types import Author, Incoming, NoticeReply
from tests.recording_sink import RecordingSink
from tests.store.records import KEY, WS

ASK = Incoming(KEY, Author("U1", "alice"), "a long question", event_id="ev-lease")


async def test_the_sink_posts_nothing_once_the_lease_may_have_lapsed(store: Store) -> None:
    elapsed = [0.0]
    leases = TurnLeases(
        store, shared=True, lease_s=60.0, owner="r1",
        clock=lambda: 1000.0 + elapsed[0], monotonic=lambda: elapsed[0],
    )  # fmt: skip
    sink = RecordingSink()
    guarded = leases.guard(ASK, sink)

    async def turn() -> None:
        await leases.begin(ASK)
        await guarded.post(NoticeReply("info", "while the lease is fresh"))
        elapsed[0] = 46.0  # no renewal got through for 3/4 of the lease: a survivor may take it soon
        await guarded.post(NoticeReply("info", "too late"))

    await asyncio.create_task(turn())
    assert [n.text for n in sink.notices] == ["while the lease is fresh"]


async def test_a_turn_taken_over_by_another_replica_is_cancelled_on_its_next_renewal(
    store: Store, second_store: Store
) -> None:
    leases = TurnLeases(store, shared=True, lease_s=3.0, owner="r1")  # renews every 0.75 s
    begun, never = asyncio.Event(), asyncio.Event()

    async def turn() -> None:
        await leases.begin(ASK)
        begun.set()
        await never.wait()  # mid-answer, until something stops it

    task = asyncio.create_task(turn())
    await asyncio.wait_for(begun.wait(), 60)
    # Another replica believes the lease expired (as it would after this one stalled) and takes it.
    assert [e for _, e, _ in await second_store.take_over_turns(1e12, "test")] == ["ev-lease"]
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 60)


async def test_a_turn_that_ends_before_its_slot_gives_its_queued_ticket_back(store: Store) -> None:
    gate = StoreGate(store, lease_s=60.0, owner="r1")
    leases = TurnLeases(store, shared=True, lease_s=60.0, owner="r1", gate=gate)

    async def turn_that_fails_early() -> None:
        await leases.begin(ASK, cap=1)
        raise RuntimeError("failed between its start and its workspace slot")

    task = asyncio.create_task(turn_that_fails_early())
    with pytest.raises(RuntimeError):
        await task
    for _ in range(1000):  # the ticket is given back by a task the turn's end schedules; bounded
        if await store.gate_counts(WS, time.time()) == (0, 0):
            break
        await asyncio.sleep(0.01)
    assert await store.gate_counts(WS, time.time()) == (0, 0)


async def test_a_question_that_took_the_thread_at_its_start_never_waits_behind_one_waiting_for_it(
    store: Store,
) -> None:
    """Three questions in one thread: W (on another replica) holds it; X waits here; Y's start comes
    just after W lets go and before X's next poll, so Y's start takes the thread. Y must run (it holds
    the thread: X's polls fail until Y ends), and X must follow as soon as Y ends, not a poll later."""
    leases = TurnLeases(store, shared=True, lease_s=60.0, owner="r1", poll_s=3600.0)  # X polls once only
    now = time.time()
    assert await store.lock_thread(KEY, "w-elsewhere", now, 60.0)
    x = Incoming(KEY, Author("U1", "alice"), "second", event_id="ev-x")
    y = Incoming(KEY, Author("U1", "alice"), "third", event_id="ev-y")
    ran: list[str] = []
    polling = asyncio.Event()

    async def turn(incoming: Incoming, begin: bool) -> None:
        if begin:
            await leases.begin(incoming)
        async with leases.hold_thread(incoming):
            ran.append(incoming.event_id)
            await store.release_thread(incoming.key, incoming.event_id)  # as its commit would

    await leases.begin(x)
    x_task = asyncio.create_task(turn(x, begin=False))
    real_lock = store.lock_thread

    async def lock_thread(*args: object) -> bool:
        held = await real_lock(*args)  # type: ignore[arg-type]
        polling.set()
        return held

    store.lock_thread = lock_thread  # type: ignore[method-assign]
    await asyncio.wait_for(polling.wait(), 60)  # X holds this replica's place in line and polls
    await store.release_thread(KEY, "w-elsewhere")  # W's commit, on the other replica
    y_task = asyncio.create_task(turn(y, begin=True))
    await asyncio.wait_for(asyncio.gather(x_task, y_task), 60)
    assert ran == ["ev-y", "ev-x"]
