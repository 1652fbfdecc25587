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
