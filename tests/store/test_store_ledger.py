"""Audit trail, usage totals and limits: ordered, complete, and confined to their workspace."""

from __future__ import annotations

from dataclasses import replace

from core.store.base import AuditRecord, LimitChange, Store, UsageRecord, UsageTotals, Workspace
from tests.store.records import KEY, WS, audit_record, key, turn

OTHER = key("1.2", workspace="T2")
OTHER_WS = Workspace.of(OTHER)


async def _three_turns(store: Store) -> None:
    await store.commit_turn(turn(KEY, "e1", ["q"], audits=[audit_record(code="a = 1", at=1.0)], at=1.0))
    await store.commit_turn(
        turn(OTHER, "e2", ["q"], audits=[audit_record(OTHER, code="b = 2", at=2.0)], at=2.0)
    )
    steps = [audit_record(code="c = 3", at=3.0), audit_record(step=2, code="d = 4", at=3.5)]
    await store.commit_turn(turn(KEY, "e3", ["q"], audits=steps, at=3.0))


async def test_audit_is_newest_first_and_pages_by_id(store: Store) -> None:
    await _three_turns(store)

    latest = await store.audit(WS)
    assert [a.code for a in latest] == ["d = 4", "c = 3", "a = 1"]
    page = await store.audit(WS, limit=1, before_id=latest[0].id)
    assert [a.code for a in page] == ["c = 3"]
    assert [a.code for a in await store.audit(WS, before_id=page[0].id)] == ["a = 1"]
    assert [a.code for a in await store.audit(OTHER_WS)] == ["b = 2"]


async def test_audit_record_round_trips_every_field(store: Store) -> None:
    refused = AuditRecord(
        key=KEY,
        user_id="U9",
        at=1234.5,
        step=3,
        code="import os\nos.system('rm -rf /')",
        allowed=False,
        risk="high",
        reasons="spawns a process; deletes files",
        outcome="refused",
        exit_code=None,
        duration_ms=0.0,
    )
    await store.commit_turn(turn(KEY, "e1", [], audits=[refused]))

    (stored,) = await store.audit(WS)
    assert stored.id is not None
    assert stored == replace(refused, id=stored.id)
    assert await store.audit_entry(WS, stored.id) == stored


async def test_audit_entry_is_confined_to_its_workspace(store: Store) -> None:
    await _three_turns(store)
    (theirs,) = await store.audit(OTHER_WS)
    assert theirs.id is not None

    assert await store.audit_entry(WS, theirs.id) is None
    assert await store.audit_entry(Workspace("discord", "T2"), theirs.id) is None
    assert await store.audit_entry(WS, 10_000) is None


async def test_export_is_oldest_first_across_workspaces(store: Store) -> None:
    await _three_turns(store)

    assert [a.code for a in await store.export_audit(None)] == ["a = 1", "b = 2", "c = 3", "d = 4"]
    assert [a.code for a in await store.export_audit(WS)] == ["a = 1", "c = 3", "d = 4"]
    assert [a.key for a in await store.export_audit(OTHER_WS)] == [OTHER]


async def test_usage_totals_for_workspace_and_user_since_a_time(store: Store) -> None:
    await store.commit_turn(turn(KEY, "e1", ["q"], audits=[audit_record()], at=100.0, tokens=1000))
    await store.commit_turn(turn(KEY, "e2", ["q"], audits=[audit_record()] * 2, at=200.0, tokens=500))
    await store.commit_turn(turn(key("t2"), "e3", ["q"], at=300.0, user="U2", tokens=50))
    await store.commit_turn(turn(OTHER, "e4", ["q"], audits=[audit_record(OTHER)], at=300.0, tokens=7))
    await store.add_usage(UsageRecord(WS, "U2", 400.0, refusals=1, tokens=25, sandbox_ms=80.5, questions=0))

    assert await store.usage(WS, since=0.0) == UsageTotals(
        questions=3, runs=3, refusals=1, tokens=1575, sandbox_ms=80.5
    )
    assert await store.usage(WS, since=200.0) == UsageTotals(2, 2, 1, 575, 80.5)
    assert await store.usage(WS, since=0.0, user_id="U2") == UsageTotals(1, 0, 1, 75, 80.5)
    assert await store.usage(WS, since=0.0, user_id="U1") == UsageTotals(2, 3, 0, 1500, 0.0)
    assert await store.usage(OTHER_WS, since=0.0) == UsageTotals(1, 1, 0, 7, 0.0)
    assert await store.usage(WS, since=500.0) == UsageTotals()


async def test_limits_and_their_change_log_stay_in_their_workspace(store: Store) -> None:
    await store.set_limit(LimitChange(WS, "timeout", "10", "30", by="admin1", at=1.0))
    await store.set_limit(LimitChange(WS, "memory", None, "512", by="admin1", at=2.0))
    await store.set_limit(LimitChange(WS, "timeout", "30", "5", by="admin2", at=3.0))
    await store.set_limit(LimitChange(OTHER_WS, "timeout", "10", "60", by="boss", at=4.0))
    await store.set_limit(LimitChange(Workspace("discord", "T1"), "timeout", None, "1", by="mod", at=5.0))

    assert (await store.limits(WS)).values == {"timeout": "5", "memory": "512"}
    assert (await store.limits(OTHER_WS)).values == {"timeout": "60"}
    assert (await store.limits(Workspace("slack", "nobody"))).values == {}
    assert await store.limit_changes(WS) == [
        LimitChange(WS, "timeout", "30", "5", "admin2", 3.0),
        LimitChange(WS, "memory", None, "512", "admin1", 2.0),
        LimitChange(WS, "timeout", "10", "30", "admin1", 1.0),
    ]
    assert [c.by for c in await store.limit_changes(OTHER_WS)] == ["boss"]
    assert len(await store.limit_changes(WS, limit=1)) == 1


async def test_change_log_records_the_stored_old_value_not_a_stale_one(store: Store) -> None:
    await store.set_limit(LimitChange(WS, "timeout", "10", "30", by="admin1", at=1.0))
    # admin2 read the limit before admin1's change and still believes it is 10
    await store.set_limit(LimitChange(WS, "timeout", "10", "20", by="admin2", at=2.0))

    newest = (await store.limit_changes(WS))[0]
    assert (newest.old, newest.new, newest.by) == ("30", "20", "admin2")
