"""Idle thread workspaces are deleted after the retention period; used ones stay."""

from __future__ import annotations

import time

from core.store.base import NewFile, ThreadState
from core.store.sqlite import SQLiteStore
from core.threadfiles.sweep import DAY_S, WorkspaceSweeper
from tests.fakes.openai_fake import FakeOpenAI
from tests.harness import core_stack
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


async def test_the_bot_sweeps_idle_workspaces_at_start_up(tmp_path) -> None:
    seed = SQLiteStore(tmp_path / "codebot.db")  # the file core_stack opens
    await seed.open()
    await seed.put_files(KEY, [NewFile("old.csv", b"1", "attached")], time.time() - 3 * DAY_S)
    await seed.put_files(OTHER, [NewFile("new.csv", b"1", "attached")], time.time())
    await seed.close()
    async with (
        FakeOpenAI() as fake,
        core_stack(tmp_path, fake.base_url, CODEBOT_WORKSPACE_RETENTION_DAYS="2"),
    ):
        pass
    check = SQLiteStore(tmp_path / "codebot.db")
    await check.open()
    try:
        assert await check.list_files(KEY) == []
        assert [f.name for f in await check.list_files(OTHER)] == ["new.csv"]
    finally:
        await check.close()
