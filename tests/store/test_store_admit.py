"""admit_run: a question's token quota and run windows checked and counted in one call, on both backends."""

from __future__ import annotations

import asyncio

from core.store.base import RunCheck, Store, Window

HOUR = 3600.0
DAY = 86400.0


def check(
    now: float, user: str = "U1", user_limit: int = 3, ws_limit: int = 10, tokens: int = 1000
) -> RunCheck:
    return RunCheck(
        tokens=Window("tokens:T1:day", tokens, DAY),
        workspace=Window("runs:workspace:T1", ws_limit, DAY),
        user=Window(f"runs:user:T1:{user}", user_limit, HOUR),
        now=now,
    )


async def used(store: Store, bucket: str, window_s: float, now: float) -> int:
    return await store.bucket_total(bucket, window_s, now)


async def test_a_granted_question_takes_the_user_and_the_workspace_slot(store: Store) -> None:
    result = await store.admit_run(check(100.0))
    assert (result.refused, result.slot) == (None, None)
    assert await used(store, "runs:user:T1:U1", HOUR, 101.0) == 1
    assert await used(store, "runs:workspace:T1", DAY, 101.0) == 1


async def test_spent_tokens_refuse_before_any_slot_is_taken(store: Store) -> None:
    await store.add_to_bucket("tokens:T1:day", 1000, DAY, 50.0)
    result = await store.admit_run(check(100.0))
    assert result.refused == "tokens"
    assert await used(store, "runs:user:T1:U1", HOUR, 101.0) == 0
    assert await used(store, "runs:workspace:T1", DAY, 101.0) == 0


async def test_a_full_workspace_refuses_without_costing_the_user_a_slot(store: Store) -> None:
    for i, t in enumerate((10.0, 20.0)):
        assert (await store.admit_run(check(t, user=f"U{i + 5}", ws_limit=2))).refused is None
    result = await store.admit_run(check(30.0, ws_limit=2))
    assert result.refused == "workspace"
    assert result.slot is not None
    assert (result.slot.granted, result.slot.used, result.slot.limit) == (False, 2, 2)
    assert result.slot.resets_at == 10.0 + DAY  # when the oldest slot leaves the window
    assert await used(store, "runs:user:T1:U1", HOUR, 31.0) == 0


async def test_a_user_over_their_hour_is_refused_and_the_workspace_not_counted(store: Store) -> None:
    for t in (10.0, 20.0):
        assert (await store.admit_run(check(t, user_limit=2))).refused is None
    result = await store.admit_run(check(30.0, user_limit=2))
    assert result.refused == "user"
    assert result.slot is not None
    assert (result.slot.used, result.slot.limit, result.slot.resets_at) == (2, 2, 10.0 + HOUR)
    assert await used(store, "runs:workspace:T1", DAY, 31.0) == 2
    assert (await store.admit_run(check(10.0 + HOUR, user_limit=2))).refused is None  # the hour slid


async def test_racing_questions_get_exactly_the_users_slots_across_connections(
    store: Store, second_store: Store
) -> None:
    stores = [store, second_store] * 5
    results = await asyncio.gather(*(s.admit_run(check(100.0 + i * 0.001)) for i, s in enumerate(stores)))
    assert sum(1 for r in results if r.refused is None) == 3
    assert {r.refused for r in results} == {None, "user"}
    assert await used(store, "runs:workspace:T1", DAY, 200.0) == 3


async def test_racing_users_get_exactly_the_workspaces_last_slots(store: Store, second_store: Store) -> None:
    stores = [store, second_store] * 4
    results = await asyncio.gather(
        *(s.admit_run(check(100.0, user=f"U{i}", ws_limit=5)) for i, s in enumerate(stores))
    )
    assert sum(1 for r in results if r.refused is None) == 5
    assert await used(store, "runs:workspace:T1", DAY, 200.0) == 5
