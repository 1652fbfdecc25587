"""The per-turn runner against the real sandbox and a real SQLite store: what runs keep, and what not."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from core.store.base import NewFile
from core.store.sqlite import SQLiteStore
from core.threadfiles.caps import MiB, ThreadCaps
from core.threadfiles.runner import ThreadRunner
from sandbox import Sandbox, SandboxConfig
from sandbox.types import RunLimits, SandboxUnavailable
from tests.workspace.conftest import KEY, Clock

LIMITS = RunLimits(timeout_s=30.0, cpu_s=30.0)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    cfg = SandboxConfig.from_env()
    if not cfg.site_dir.is_dir():
        pytest.skip("sandbox environment missing: run `codebot setup` first")
    async with Sandbox(dataclasses.replace(cfg, pool_size=0)) as sb:
        yield sb


def _runner(
    sandbox: Sandbox, store: SQLiteStore, clock: Clock, notes: list[str], **caps: int
) -> ThreadRunner:
    async def notify(text: str) -> None:
        notes.append(text)

    return ThreadRunner(sandbox, store, KEY, ThreadCaps(**caps), notify, clock)


async def test_a_killed_run_keeps_the_previous_state(
    sandbox: Sandbox, store: SQLiteStore, clock: Clock
) -> None:
    notes: list[str] = []
    turn = _runner(sandbox, store, clock, notes)
    assert (await turn.run("x = 1", LIMITS)).state_saved
    killed = await turn.run("x = 2\nwhile True:\n    pass", LIMITS.replace(timeout_s=1.0, cpu_s=1.0))
    assert killed.killed_reason is not None and not killed.state_saved  # timeout or CPU, whichever first
    later = _runner(sandbox, store, clock, notes)  # the next turn, from the store
    assert (await later.run("result = x", LIMITS)).result == "1"


async def test_files_a_run_deletes_leave_the_workspace(
    sandbox: Sandbox, store: SQLiteStore, clock: Clock
) -> None:
    await store.put_files(KEY, [NewFile("old.csv", b"a\n1\n", "attached")], clock())
    notes: list[str] = []
    result = await _runner(sandbox, store, clock, notes).run("import os\nos.remove('old.csv')", LIMITS)
    assert result.deleted_files == ("old.csv",)
    assert await store.list_files(KEY) == []


async def test_a_workspace_bigger_than_the_base_directory_still_fits(
    sandbox: Sandbox, store: SQLiteStore, clock: Clock
) -> None:
    big = NewFile("big.bin", b"\x01" * (20 * MiB), "attached")
    await store.put_files(KEY, [big], clock())
    small_dir = LIMITS.replace(output_dir_mb=16)
    result = await _runner(sandbox, store, clock, []).run(
        "import os\nresult = os.path.getsize('big.bin')", small_dir
    )
    assert result.result == str(20 * MiB), result.error


async def test_changes_that_cannot_be_stored_still_return_the_result(
    sandbox: Sandbox, store: SQLiteStore, clock: Clock
) -> None:
    notes: list[str] = []
    turn = _runner(sandbox, store, clock, notes)
    await turn.run("x = 1", LIMITS)
    await store.close()  # the database goes away mid-turn
    result = await turn.run("open('out.txt', 'w').write('hi')\nresult = x + 1", LIMITS)
    assert result.result == "2" and [f.name for f in result.files] == ["out.txt"]
    assert any("could not be saved" in n for n in notes)


async def test_a_workspace_that_cannot_be_loaded_stops_the_run_before_it_starts(
    sandbox: Sandbox, store: SQLiteStore, clock: Clock
) -> None:
    await store.close()
    with pytest.raises(SandboxUnavailable, match="workspace could not be loaded"):
        await _runner(sandbox, store, clock, []).run("result = 1", LIMITS)
