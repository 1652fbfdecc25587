"""Setting limits per workspace, the change log, and enforcement with a controllable clock."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from core.limits import EffectiveLimits, LimitDefaults, LimitError, LimitsEngine
from core.store.base import Workspace
from core.store.sqlite import SQLiteStore
from core.types import Author
from tests.limits.conftest import WS, Clock, incoming

ADMIN = Author("U9", "alice", is_admin=True)


async def test_set_confirms_old_and_new_and_takes_effect(engine: LimitsEngine, clock: Clock) -> None:
    text = await engine.set(WS, "timeout", "30s", ADMIN)
    assert text == "*timeout*: `10 s` → `30 s`; takes effect on the next question."
    limits = await engine.effective(WS)
    assert limits.timeout_s == 30 and "timeout" in limits.custom


async def test_every_change_is_logged_with_who_when_old_and_new(engine: LimitsEngine, clock: Clock) -> None:
    await engine.set(WS, "memory", "512MB", ADMIN)
    clock.advance(60)
    await engine.set(WS, "memory", "1GB", Author("U7", "bob"))
    newest, oldest = await engine.changes(WS)
    assert (oldest.name, oldest.old, oldest.new, oldest.by, oldest.at) == (
        "memory",
        "256",
        "512",
        "alice (U9)",
        clock.now - 60,
    )
    assert (newest.old, newest.new, newest.by, newest.at) == ("512", "1024", "bob (U7)", clock.now)


async def test_bad_input_changes_nothing(engine: LimitsEngine, store: SQLiteStore) -> None:
    for name, raw in [("timout", "30"), ("timeout", "600s"), ("steps", "-1"), ("safety", "yolo")]:
        with pytest.raises(LimitError):
            await engine.set(WS, name, raw, ADMIN)
    assert (await store.limits(WS)).values == {}
    assert await engine.changes(WS) == []


async def test_setting_the_same_value_again_is_not_a_change(engine: LimitsEngine) -> None:
    await engine.set(WS, "steps", "5", ADMIN)
    assert await engine.set(WS, "steps", "5 steps", ADMIN) == "*steps* is already `5`; nothing changed."
    assert len(await engine.changes(WS)) == 1


async def test_default_restores_the_operators_default(engine: LimitsEngine) -> None:
    await engine.set(WS, "steps", "5", ADMIN)
    text = await engine.set(WS, "steps", "default", ADMIN)
    assert text.startswith("*steps*: `5` → `3` (the operator's default)")
    limits = await engine.effective(WS)
    assert limits.steps == 3 and "steps" not in limits.custom


async def test_workspaces_see_and_change_only_their_own(engine: LimitsEngine) -> None:
    other, same_id_on_discord = Workspace("slack", "T2"), Workspace("discord", "T1")
    await engine.set(WS, "concurrency", "2", ADMIN)
    await engine.set(other, "concurrency", "8", ADMIN)
    assert (await engine.effective(WS)).concurrency == 2
    assert (await engine.effective(other)).concurrency == 8
    assert (await engine.effective(same_id_on_discord)).concurrency == 4
    assert [c.new for c in await engine.changes(other)] == ["8"]
    assert await engine.changes(same_id_on_discord) == []


async def test_the_operator_ceiling_binds_admins_and_later_tightening(
    store: SQLiteStore, clock: Clock
) -> None:
    loose = LimitsEngine(store, LimitDefaults.from_env({"CODEBOT_LIMIT_TIMEOUT_MAX": "300"}), clock)
    await loose.set(WS, "timeout", "5m", ADMIN)
    tight = LimitsEngine(store, LimitDefaults(), clock)
    assert (await tight.effective(WS)).timeout_s == 60  # clamped, not refused: the bot keeps working
    with pytest.raises(LimitError, match="between 1 and 60 seconds"):
        await tight.set(WS, "timeout", "5m", ADMIN)


def limits(**kw: object) -> EffectiveLimits:
    return dataclasses.replace(EffectiveLimits(), **kw)  # type: ignore[arg-type]


async def test_user_hourly_window_names_the_limit_and_when_it_frees(
    engine: LimitsEngine, clock: Clock
) -> None:
    lim = limits(user_runs_per_hour=3)
    for _ in range(3):  # at 14:00, 14:10, 14:20
        assert (await engine.admit(incoming("U1"), lim)).granted
        clock.advance(600)
    refused = await engine.admit(incoming("U1"), lim)
    assert not refused.granted and refused.limit == "user_runs_per_hour"
    assert refused.notice == (
        "You have used your 3 runs for this hour; the next slot frees up in 30 min (at 15:00 UTC)."
    )
    assert (await engine.admit(incoming("U2"), lim)).granted  # another user is not affected
    clock.advance(29 * 60 + 30)
    assert "frees up in 30 s (at 15:00 UTC)" in (await engine.admit(incoming("U1"), lim)).notice
    clock.advance(31)  # 15:00:01: the 14:00 slot has left the sliding window
    assert (await engine.admit(incoming("U1"), lim)).granted
    # The refused attempts took no slot: the next one frees at 15:10, not later.
    assert "(at 15:10 UTC)" in (await engine.admit(incoming("U1"), lim)).notice


async def test_workspace_daily_window_refuses_without_eating_the_users_slot(
    engine: LimitsEngine, clock: Clock
) -> None:
    lim = limits(workspace_runs_per_day=2)
    assert (await engine.admit(incoming("U1"), lim)).granted
    clock.advance(3600)
    assert (await engine.admit(incoming("U2"), lim)).granted
    refused = await engine.admit(incoming("U3"), lim)
    assert refused.limit == "workspace_runs_per_day"
    assert refused.notice == (
        "This workspace has used its 2 runs for the last 24 hours; the next slot frees up in 23 h "
        "(at 14:00 UTC tomorrow)."
    )
    assert (await engine.window_usage(WS, "U3")).user_runs_last_hour == 0
    assert (await engine.admit(incoming("U3", workspace="T2"), lim)).granted  # other workspace unaffected


async def test_token_quota_is_per_utc_day(engine: LimitsEngine, clock: Clock) -> None:
    lim = limits(tokens_per_day=1000)
    await engine.record_tokens(WS, 600)
    assert (await engine.admit(incoming(event="a"), lim)).granted
    await engine.record_tokens(WS, 400)
    refused = await engine.admit(incoming(event="b"), lim)
    assert refused.limit == "tokens_per_day"
    assert refused.notice == (
        "This workspace has used its 1,000 LLM tokens for today; the quota resets at midnight UTC, in 10 h."
    )
    assert (await engine.admit(incoming(workspace="T2"), lim)).granted
    clock.advance(10 * 3600 + 1)  # 00:00:01 the next day
    assert (await engine.admit(incoming(event="c"), lim)).granted
    assert (await engine.window_usage(WS, "U1")).tokens_today == 0


async def test_channel_allow_list(engine: LimitsEngine) -> None:
    lim = limits(channels=("C9", "C8"))
    refused = await engine.admit(incoming(channel="C1"), lim)
    assert refused.limit == "channels"
    assert refused.notice.startswith("I don't answer in this channel; an admin limited me to `C9`, `C8`.")
    assert (await engine.window_usage(WS, "U1")).user_runs_last_hour == 0
    assert (await engine.admit(incoming(channel="C9"), lim)).granted


async def test_the_last_slots_go_to_exactly_as_many_questions(
    engine: LimitsEngine, db_path: Path, clock: Clock
) -> None:
    lim = limits(workspace_runs_per_day=8, user_runs_per_hour=100)
    for i in range(3):
        assert (await engine.admit(incoming(f"U{i}"), lim)).granted
    replica_store = SQLiteStore(db_path)  # a second process's connection to the same file
    await replica_store.open()
    try:
        replica = LimitsEngine(replica_store, LimitDefaults(), clock)
        admits = [(engine if i % 2 else replica).admit(incoming(f"V{i}"), lim) for i in range(20)]
        results = await asyncio.gather(*admits)
    finally:
        await replica_store.close()
    assert sum(r.granted for r in results) == 5
    assert {r.limit for r in results if not r.granted} == {"workspace_runs_per_day"}
    assert (await engine.window_usage(WS, "U0")).workspace_runs_last_day == 8


async def test_one_users_concurrent_questions_get_only_their_hourly_slots(engine: LimitsEngine) -> None:
    lim = limits(user_runs_per_hour=5)
    results = await asyncio.gather(*(engine.admit(incoming("U1", event=str(i)), lim) for i in range(20)))
    assert sum(r.granted for r in results) == 5
    assert (await engine.window_usage(WS, "U1")).workspace_runs_last_day == 5


async def test_recording_no_tokens_changes_nothing(engine: LimitsEngine) -> None:
    await engine.record_tokens(WS, 0)
    assert (await engine.window_usage(WS, "U1")).tokens_today == 0
