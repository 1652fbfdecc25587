"""History per thread survives restarts, is bounded on load, resets, and is written all-or-nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest

from core.store.base import Store, StoreError
from tests.store.backends import Backend
from tests.store.records import KEY, WS, audit_record, key, turn


def _msg(role: str, text: str) -> str:
    return json.dumps({"role": role, "content": text})


async def test_reopen_restores_every_conversation_in_order(backend: Backend) -> None:
    threads = [key("1.1"), key("1.1", channel="C2"), key("1.1", workspace="T2"), key("9", platform="discord")]
    expected: dict = {}
    store = backend.new()
    await store.open()
    for turn_no in range(3):
        for n, k in enumerate(threads):
            msgs = [_msg("user", f"q{turn_no} in {n}"), _msg("assistant", f"a{turn_no} in {n}")]
            await store.commit_turn(turn(k, f"ev-{turn_no}-{n}", msgs))
            expected.setdefault(k, []).extend(msgs)
    await store.close()

    reopened = backend.new()
    await reopened.open()
    try:
        for k in threads:
            assert await reopened.load_messages(k, 100) == expected[k]
            assert await reopened.has_conversation(k)
    finally:
        await reopened.close()


async def test_load_messages_returns_newest_n_oldest_first(store: Store) -> None:
    await store.commit_turn(turn(KEY, "ev1", ["m1", "m2", "m3"]))
    await store.commit_turn(turn(KEY, "ev2", ["m4", "m5"]))

    assert await store.load_messages(KEY, 2) == ["m4", "m5"]
    assert await store.load_messages(KEY, 4) == ["m2", "m3", "m4", "m5"]
    assert await store.load_messages(KEY, 50) == ["m1", "m2", "m3", "m4", "m5"]
    assert await store.load_messages(KEY, 0) == []
    assert await store.load_messages(key("unknown"), 10) == []


async def test_messages_round_trip_exactly(store: Store) -> None:
    odd = [_msg("user", "données 🐍 ünïcode\n```py\nx = '\\x00'\n```"), "x" * 50_000, '{"a": [1, 2.5, null]}']
    await store.commit_turn(turn(KEY, "ev1", odd))
    assert await store.load_messages(KEY, 10) == odd


async def test_a_thread_is_a_conversation_from_its_first_started_turn(store: Store) -> None:
    # A follow-up arriving at any moment of the first turn, including the instant it commits, must be
    # recognised as part of the conversation: one read covers both the started turn and the history.
    assert not await store.has_conversation(KEY)
    await store.start_turn(KEY, "ev1", "U1", "what is 2+2?", now=1000.0)
    assert await store.has_conversation(KEY)
    assert not await store.has_conversation(key("other"))
    await store.commit_turn(turn(KEY, "ev1", ["q", "a"]))
    assert await store.has_conversation(KEY)

    await store.start_turn(key("gone"), "ev2", "U1", "hello", now=1001.0)
    await store.abandon_turn("ev2", "shutdown", now=1002.0)
    assert not await store.has_conversation(key("gone"))  # nothing stored and nothing running


async def test_reset_forgets_one_thread_only(store: Store, backend: Backend) -> None:
    other = key("other")
    await store.commit_turn(turn(KEY, "ev1", ["m1", "m2"]))
    await store.commit_turn(turn(other, "ev2", ["o1"]))

    assert await store.reset_conversation(KEY) == 2
    assert await backend.rows("SELECT body FROM messages") == [("o1",)]  # deleted, not left orphaned
    assert not await store.has_conversation(KEY)
    assert await store.load_messages(KEY, 10) == []
    assert await store.load_messages(other, 10) == ["o1"]
    assert await store.reset_conversation(KEY) == 0

    await store.commit_turn(turn(KEY, "ev3", ["fresh"]))
    assert await store.load_messages(KEY, 10) == ["fresh"]


async def test_failed_commit_writes_nothing(store: Store) -> None:
    await store.start_turn(KEY, "ev1", "U1", "what is 2+2?", now=1000.0)
    bad_audit = audit_record(step=-1)  # violates the audit table's CHECK, after the messages were inserted
    doomed = turn(KEY, "ev1", ["q", "a"], audits=[audit_record(step=1), bad_audit], tokens=99)

    with pytest.raises(StoreError, match="rejected"):
        await store.commit_turn(doomed)

    assert await store.load_messages(KEY, 10) == []
    assert await store.audit(WS) == []
    assert (await store.usage(WS, since=0)).tokens == 0
    assert [event for _, event, _ in await store.unfinished_turns()] == ["ev1"]

    await store.commit_turn(turn(KEY, "ev1", ["q", "a"], audits=[audit_record(step=1)]))
    assert await store.load_messages(KEY, 10) == ["q", "a"]
    assert await store.unfinished_turns() == []


async def test_committing_the_same_event_twice_does_not_duplicate_history(store: Store) -> None:
    done = turn(KEY, "ev1", ["q", "a"], audits=[audit_record()])
    await store.commit_turn(done)
    await store.commit_turn(done)

    assert await store.load_messages(KEY, 10) == ["q", "a"]
    assert len(await store.audit(WS)) == 1
    assert (await store.usage(WS, since=0)).questions == 1


async def test_unfinished_turns_survive_a_restart(backend: Backend) -> None:
    store = backend.new()
    await store.open()
    await store.start_turn(KEY, "done", "U1", "q1", now=1.0)
    await store.start_turn(KEY, "dropped", "U1", "q2", now=2.0)
    await store.start_turn(key("t2"), "crashed", "U2", "plot a sine", now=3.0)
    await store.commit_turn(turn(KEY, "done", ["q1", "a1"], at=4.0))
    await store.abandon_turn("dropped", "shutdown", now=5.0)
    await store.close()

    reopened = backend.new()
    await reopened.open()
    try:
        assert await reopened.unfinished_turns() == [(key("t2"), "crashed", "plot a sine")]
        await reopened.abandon_turn("crashed", "restart", now=6.0)
        assert await reopened.unfinished_turns() == []
    finally:
        await reopened.close()


async def test_abandon_does_not_undo_a_commit_and_a_redelivery_restarts(store: Store) -> None:
    await store.start_turn(KEY, "ev1", "U1", "q", now=1.0)
    await store.commit_turn(turn(KEY, "ev1", ["q", "a"], at=2.0))
    await store.abandon_turn("ev1", "shutdown", now=3.0)
    await store.commit_turn(turn(KEY, "ev1", ["q", "a"], at=4.0))
    assert await store.load_messages(KEY, 10) == ["q", "a"]  # still committed: the retry was a no-op

    await store.start_turn(KEY, "ev2", "U1", "q2", now=5.0)
    await store.abandon_turn("ev2", "shutdown", now=6.0)
    await store.start_turn(KEY, "ev2", "U1", "q2", now=7.0)
    assert await store.unfinished_turns() == [(KEY, "ev2", "q2")]


async def test_cancelled_commits_leave_whole_turns_and_no_lock(store: Store, second_store: Store) -> None:
    # Cancel commits at every point of their life (queued, BEGIN, inserts, COMMIT) as a shutdown would.
    for delay in range(12):
        task = asyncio.create_task(store.commit_turn(turn(KEY, f"ev{delay}", [f"q{delay}", f"a{delay}"])))
        for _ in range(delay):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    history = await store.load_messages(KEY, 100)
    assert len(history) % 2 == 0
    assert all(q[1:] == a[1:] for q, a in zip(history[::2], history[1::2], strict=True))
    # Neither connection is left inside a transaction: both can still write.
    await second_store.commit_turn(turn(KEY, "after1", ["q", "a"]))
    await store.commit_turn(turn(KEY, "after2", ["q2", "a2"]))
    assert (await store.load_messages(KEY, 4))[-4:] == ["q", "a", "q2", "a2"]


async def test_racing_commits_of_one_event_write_it_once(store: Store, second_store: Store) -> None:
    # A retried commit on another replica must not double the history, even when both run at once.
    done = turn(KEY, "ev1", ["q", "a"], audits=[audit_record()])
    await asyncio.gather(*((store if n % 2 else second_store).commit_turn(done) for n in range(10)))

    assert await store.load_messages(KEY, 10) == ["q", "a"]
    assert len(await store.audit(WS)) == 1
    assert (await store.usage(WS, since=0)).questions == 1


async def test_racing_turns_of_one_thread_keep_every_message_whole(store: Store, second_store: Store) -> None:
    # Twenty turns of one thread committed at once from two stores: no message lost, none interleaved.
    turns = [turn(KEY, f"ev{n}", [f"q{n}", f"a{n}"]) for n in range(20)]
    await asyncio.gather(*((store if n % 2 else second_store).commit_turn(t) for n, t in enumerate(turns)))

    history = await store.load_messages(KEY, 100)
    assert sorted(history) == sorted(m for t in turns for m in t.messages)
    assert all(q[1:] == a[1:] for q, a in zip(history[::2], history[1::2], strict=True))
