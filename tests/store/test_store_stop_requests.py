"""Stop requests in the store: any replica marks a started turn, the replica that owns it finds it."""

from __future__ import annotations

from core.store.base import Store
from tests.store.records import KEY, key, turn


async def start(store: Store, event_id: str, owner: str = "replica-a") -> None:
    await store.start_turn_leased(KEY, event_id, "U1", "q", 100.0, owner, 60.0)


async def test_the_asker_marks_a_turn_and_its_owner_finds_it(store: Store, second_store: Store) -> None:
    await start(store, "ev1")
    assert await second_store.request_stop(KEY, "ev1", "alice", "U1", admin=False) == "U1"
    assert await store.stop_requests("replica-a") == [("ev1", "alice")]
    assert await store.stop_requests("replica-b") == []  # only the owner's turns


async def test_someone_else_learns_the_asker_but_marks_nothing(store: Store) -> None:
    await start(store, "ev1")
    assert await store.request_stop(KEY, "ev1", "bob", "U2", admin=False) == "U1"
    assert await store.stop_requests("replica-a") == []
    assert await store.request_stop(KEY, "ev1", "ops", "UOPS", admin=True) == "U1"  # an admin may
    assert await store.stop_requests("replica-a") == [("ev1", "ops")]


async def test_only_a_started_turn_of_that_thread_can_be_marked(store: Store) -> None:
    await start(store, "ev1")
    assert await store.request_stop(key("other"), "ev1", "alice", "U1", admin=True) is None
    assert await store.request_stop(KEY, "missing", "alice", "U1", admin=True) is None
    await store.commit_turn(turn(KEY, "ev1", ["q", "a"], at=101.0))
    assert await store.request_stop(KEY, "ev1", "alice", "U1", admin=True) is None
    assert await store.stop_requests("replica-a") == []
