"""begin_turn: a question's claim, admission and start in one call, on both backends.

The same decisions as claim_event, admit_run and start_turn_leased made one after the other, and nothing
written at all when the limits the caller decided with have changed since (on any replica).
"""

from __future__ import annotations

import asyncio

from core.store.base import LimitChange, NewFile, RunCheck, Store, ThreadState, TurnBegin, Window
from sandbox.types import KeptName
from tests.store.records import KEY, WS, key, turn

HOUR = 3600.0
DAY = 86400.0
OWNER = "replica-a"


def check(now: float, user: str = "U1", user_limit: int = 3, ws_limit: int = 10) -> RunCheck:
    return RunCheck(
        tokens=Window("tokens:T1:day", 1000, DAY),
        workspace=Window("runs:workspace:T1", ws_limit, DAY),
        user=Window(f"runs:user:T1:{user}", user_limit, HOUR),
        now=now,
    )


def begin(
    event: str,
    now: float = 100.0,
    *,
    version: int = 0,
    run_check: RunCheck | None = None,
    admit: bool = True,
    thread: str = KEY.thread,
    cap: int | None = 2,
    history: int | None = None,
) -> TurnBegin:
    runs = (run_check or check(now)) if admit else None
    question = "what is 6*7?"
    return TurnBegin(
        key(thread), event, "U1", question, now, 3600.0, version, runs, OWNER, 60.0, cap, history
    )


async def slots(store: Store, now: float = 101.0) -> tuple[int, int]:
    user = await store.bucket_total("runs:user:T1:U1", HOUR, now)
    return user, await store.bucket_total("runs:workspace:T1", DAY, now)


async def started(store: Store) -> list[str]:
    return [event for _, event, _ in await store.unfinished_turns()]


async def test_a_question_is_claimed_counted_and_started_with_its_lease_lock_and_ticket(store: Store) -> None:
    begun = await store.begin_turn(begin("e1"))
    assert begun.outcome == "started" and begun.admission is None
    assert begun.start is not None and begun.start.holds_thread
    assert begun.start.ticket is not None and begun.start.position == 0  # a free slot: running at once
    assert await slots(store) == (1, 1)
    assert await started(store) == ["e1"]
    assert not await store.claim_event("slack", "e1", 102.0, 3600.0)  # its redeliveries are duplicates
    assert await store.renew_turn("e1", OWNER, 110.0, 60.0) == ("renewed", True)


async def test_a_redelivery_is_a_duplicate_and_counts_nothing(store: Store) -> None:
    await store.begin_turn(begin("e1"))
    again = await store.begin_turn(begin("e1", 105.0))
    assert (again.outcome, again.admission, again.start) == ("duplicate", None, None)
    assert await slots(store, 106.0) == (1, 1)


async def test_stale_limits_write_nothing_and_the_current_version_starts_the_question(store: Store) -> None:
    assert (await store.limits(WS)).version == 0
    await store.set_limit(LimitChange(WS, "user_runs_per_hour", None, "1", by="admin", at=50.0))
    version = (await store.limits(WS)).version
    assert version > 0
    stale = await store.begin_turn(begin("e1", version=0))
    assert stale.outcome == "stale"
    assert await slots(store) == (0, 0) and await started(store) == []
    assert (await store.begin_turn(begin("e1", version=version))).outcome == "started"  # not claimed before


async def test_a_refused_question_is_claimed_but_takes_no_slot_and_starts_nothing(store: Store) -> None:
    for n in (1, 2):
        runs = check(10.0 * n, user_limit=2)
        assert (
            await store.begin_turn(begin(f"e{n}", 10.0 * n, run_check=runs, thread=f"t{n}"))
        ).outcome == "started"
    refused = await store.begin_turn(begin("e3", 30.0, run_check=check(30.0, user_limit=2), thread="t3"))
    assert refused.outcome == "refused" and refused.start is None
    assert refused.admission is not None and refused.admission.refused == "user"
    slot = refused.admission.slot
    assert slot is not None and (slot.used, slot.limit, slot.resets_at) == (2, 2, 10.0 + HOUR)
    assert await slots(store, 31.0) == (2, 2)  # the workspace is not counted for a refused user
    assert sorted(await started(store)) == ["e1", "e2"]
    assert (await store.begin_turn(begin("e3", 40.0, thread="t3"))).outcome == "duplicate"  # notice said once


async def test_a_claim_alone_claims_and_counts_nothing(store: Store) -> None:
    claimed = await store.begin_turn(begin("e1", admit=False))
    assert claimed.outcome == "claimed"
    assert await slots(store) == (0, 0) and await started(store) == []
    assert (await store.begin_turn(begin("e1", admit=False))).outcome == "duplicate"


async def test_a_second_question_in_a_busy_thread_starts_without_its_lock_or_a_ticket(store: Store) -> None:
    await store.begin_turn(begin("e1"))
    second = await store.begin_turn(begin("e2", 101.0))
    assert second.outcome == "started" and second.start is not None
    assert (second.start.holds_thread, second.start.ticket) == (False, None)  # it waits for the thread
    assert sorted(await started(store)) == ["e1", "e2"]


async def test_racing_deliveries_on_two_stores_start_the_question_once(
    store: Store, second_store: Store
) -> None:
    results = await asyncio.gather(
        *((store, second_store)[n % 2].begin_turn(begin("same", 100.0 + n)) for n in range(6))
    )
    assert sorted(r.outcome for r in results) == ["duplicate"] * 5 + ["started"]
    assert await slots(store, 110.0) == (1, 1)


async def test_the_limits_version_is_per_workspace_and_moves_with_every_change(store: Store) -> None:
    other = key("t", workspace="T2")
    await store.set_limit(LimitChange(WS, "timeout", None, "5", by="admin", at=1.0))
    first = (await store.limits(WS)).version
    await store.set_limit(LimitChange(WS, "timeout", "5", "default", by="admin", at=2.0))
    values = await store.limits(WS)
    assert values.version > first and values.values == {"timeout": "default"}
    assert (await store.limits(type(WS).of(other))).version == 0


async def test_a_start_that_takes_the_thread_reads_its_context_as_thread_context_does(store: Store) -> None:
    await store.commit_turn(turn(KEY, "e0", ["q0", "a0", "q1", "a1"], at=50.0))
    await store.put_files(KEY, [NewFile("data.csv", b"x,y\n1,2\n", "attached")], 60.0)
    await store.save_state(KEY, ThreadState(b"blob", 4, (KeptName("n", "int"),)), 70.0)
    begun = await store.begin_turn(begin("e1", history=3))
    assert begun.outcome == "started" and begun.start is not None and begun.start.holds_thread
    assert begun.context == await store.thread_context(KEY, 3)
    assert begun.context is not None and begun.context.messages == ("a0", "q1", "a1")
    assert [f.name for f in begun.context.files] == ["data.csv"]
    assert begun.context.state is not None and begun.context.state.blob == b""  # described, not loaded
    busy = await store.begin_turn(begin("e2", 101.0, history=3))  # the thread is e1's: read nothing
    assert busy.outcome == "started" and busy.context is None
    assert (await store.begin_turn(begin("e3", 102.0, thread="t-new"))).context is None  # none asked for
