"""A turn's commit adds its charges (LLM tokens) exactly once and gives back its queue ticket, atomically."""

from __future__ import annotations

import dataclasses

from core.store.base import BucketCharge, Store, Workspace
from tests.store.records import key, turn

DAY = 86400.0
KEY = key("th1")


async def test_a_commit_charges_its_tokens_once_even_when_retried(store: Store) -> None:
    charged = dataclasses.replace(
        turn(KEY, "ev1", ["q", "a"], at=1000.0, tokens=42), charges=(BucketCharge("tokens:T1:d", 42, DAY),)
    )
    await store.commit_turn(charged)
    await store.commit_turn(charged)  # a retried commit writes nothing more
    assert await store.bucket_total("tokens:T1:d", DAY, 1001.0) == 42
    assert await store.bucket_total("tokens:T1:d", DAY, 1000.0 + DAY) == 0  # it slides out of the window
    assert await store.load_messages(KEY, 10) == ["q", "a"]


async def test_a_commit_without_charges_adds_to_no_bucket(store: Store) -> None:
    await store.commit_turn(turn(KEY, "ev1", ["q", "a"], at=1000.0))
    assert await store.bucket_total("tokens:T1:d", DAY, 1001.0) == 0


async def test_several_charges_of_one_commit_all_land(store: Store) -> None:
    charges = (BucketCharge("b1", 5, DAY), BucketCharge("b2", 7, 60.0), BucketCharge("b1", 1, DAY))
    await store.commit_turn(dataclasses.replace(turn(KEY, "ev1", [], at=10.0), charges=charges))
    assert await store.bucket_total("b1", DAY, 11.0) == 6
    assert await store.bucket_total("b2", 60.0, 11.0) == 7
    assert await store.bucket_total("b2", 60.0, 70.0) == 0


async def test_a_commit_gives_back_the_turns_queue_ticket(store: Store, second_store: Store) -> None:
    ws = Workspace("slack", "T1")
    first, running = await store.gate_enter(ws, "replica-a", 1, 100.0, 60.0)
    second, waiting = await second_store.gate_enter(ws, "replica-b", 1, 100.0, 60.0)
    assert (running, waiting) == (0, 1)
    await store.commit_turn(dataclasses.replace(turn(KEY, "ev1", ["q", "a"], at=101.0), ticket=first))
    assert await second_store.gate_poll(second, ws, 1, 101.0, 60.0) == 0  # the slot went to the next
    assert await store.gate_counts(ws, 101.0) == (1, 0)
