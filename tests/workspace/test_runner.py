"""The per-turn runner against the real sandbox and a real SQLite store: what runs keep, and what not."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from core.store.base import NewFile, ThreadFiles
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


class _Calls:
    """The real store, with the names of the workspace calls a turn makes written down."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self.names: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.names.append(name)
            return await method(*args, **kwargs)

        return call


async def _turn(sandbox: Sandbox, store: SQLiteStore, clock: Clock) -> tuple[ThreadRunner, _Calls]:
    """A turn's runner as ThreadWorkspaces builds it: from the thread's context."""
    calls = _Calls(store)
    context = await store.thread_context(KEY, 10)

    async def notify(text: str) -> None:
        raise AssertionError(text)

    return ThreadRunner(sandbox, cast(ThreadFiles, calls), KEY, ThreadCaps(), notify, clock, context), calls


async def test_a_thread_with_nothing_to_keep_costs_no_workspace_round_trip(
    sandbox: Sandbox, store: SQLiteStore, clock: Clock
) -> None:
    turn, calls = await _turn(sandbox, store, clock)
    assert (await turn.run("print(6 * 7)", LIMITS)).stdout == "42\n"
    assert (await turn.run("print(1)", LIMITS)).stdout == "1\n"
    assert calls.names == []  # nothing to load, and an empty state left empty is not saved
    assert await store.load_state(KEY) is None


async def test_a_state_left_as_it_was_is_not_saved_again_and_the_workspace_stays_used(
    sandbox: Sandbox, store: SQLiteStore, clock: Clock
) -> None:
    first, calls = await _turn(sandbox, store, clock)
    await first.run("x = 41", LIMITS)
    assert calls.names == ["save_state"]  # the empty workspace was not loaded
    clock.now += 86_400
    later, calls = await _turn(sandbox, store, clock)
    assert (await later.run("print(x + 1)", LIMITS)).stdout == "42\n"
    assert calls.names == ["load_workspace"]  # x came back unchanged: no save
    assert await store.sweep_workspaces(idle_before=clock.now - 1) == 0  # the load marked it used
    changed, calls = await _turn(sandbox, store, clock)
    await changed.run("x = 1", LIMITS)
    assert calls.names == ["load_workspace", "save_state"]
    again, _ = await _turn(sandbox, store, clock)
    assert (await again.run("result = x", LIMITS)).result == "1"
