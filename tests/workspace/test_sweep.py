"""Idle thread workspaces are deleted after the retention period; used ones stay."""

from __future__ import annotations

from core.store.base import NewFile, ThreadState
from core.store.sqlite import SQLiteStore
from core.threadfiles.sweep import DAY_S, WorkspaceSweeper
from tests.workspace.conftest import KEY, OTHER, Clock


async def test_the_sweep_deletes_workspaces_idle_past_the_retention(store: SQLiteStore, clock: Clock) -> None:
    start = clock.now
    for key in (KEY, OTHER):
        await store.put_files(key, [NewFile("a.csv", b"1", "attached")], start)
        await store.save_state(key, ThreadState(b"s", 1), start)
    sweeper = WorkspaceSweeper(store, retention_days=30, clock=clock)
    clock.now = start + 29 * DAY_S
    await store.touch_workspace(OTHER, clock.now)  # a turn used OTHER's workspace yesterday
    assert await sweeper.sweep_once() == 0
    clock.now = start + 31 * DAY_S
    assert await sweeper.sweep_once() == 1
    assert await store.list_files(KEY) == [] and await store.load_state(KEY) is None
    assert [f.name for f in await store.list_files(OTHER)] == ["a.csv"]


async def test_a_store_failure_does_not_stop_the_sweeper(tmp_path, clock: Clock) -> None:
    closed = SQLiteStore(tmp_path / "never-opened.db")
    assert await WorkspaceSweeper(closed, retention_days=1, clock=clock).sweep_once() == 0
