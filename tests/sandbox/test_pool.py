"""The warm pool: pre-imported, single-use sandboxes that refill in the background and share nothing."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import pytest

from sandbox import RunLimits, Sandbox
from tests.sandbox.conftest import daemon_code, eventually, processes_with, wait_gone, wait_pool_ready

LEAVE_STATE = """
import builtins, os, sys
open('left.txt', 'w').write('run 1')
open('/tmp/left.txt', 'w').write('run 1')
builtins.LEFT_BY_RUN_1 = True
sys.modules['left_module'] = type(sys)('left_module')
os.environ['LEFT'] = '1'
"""
SEE_STATE = """
import builtins, os, sys
result = sorted(k for k, seen in {
    'cwd file': os.path.exists('left.txt'),
    'tmp file': os.path.exists('/tmp/left.txt'),
    'builtin': hasattr(builtins, 'LEFT_BY_RUN_1'),
    'module': 'left_module' in sys.modules,
    'env': 'LEFT' in os.environ,
}.items() if seen)
"""


async def test_warm_run_has_the_preimports_loaded(open_sandbox: Callable[..., Sandbox]) -> None:
    # code that uses numpy finds it loaded (code that needs nothing runs on the lean slot: test_lean.py)
    code = "import sys\nloaded = 'numpy' in sys.modules\nimport numpy\nresult = loaded"
    async with open_sandbox(pool_size=1, preimport=("numpy",)) as sb:
        await wait_pool_ready(sb, 1)
        warm = await sb.run(code)
    async with open_sandbox(pool_size=0) as sb:
        cold = await sb.run(code)
    assert (warm.result, cold.result) == ("True", "False")


async def test_two_warm_runs_never_share_state(open_sandbox: Callable[..., Sandbox]) -> None:
    async with open_sandbox(pool_size=2, preimport=()) as sb:
        await wait_pool_ready(sb, 2)
        first = await sb.run(LEAVE_STATE)
        second = await sb.run(SEE_STATE)
    assert first.ok, first.error
    assert [f.name for f in first.files] == ["left.txt"]
    assert second.ok and second.result == "[]", second.result
    assert second.files == ()


async def test_pool_refills_and_never_reuses_a_sandbox(open_sandbox: Callable[..., Sandbox]) -> None:
    async with open_sandbox(pool_size=2, preimport=()) as sb:
        assert sb.pool is not None
        await wait_pool_ready(sb, 2)
        before = sb.pool.spawned
        for _ in range(3):
            await wait_pool_ready(sb, 2)
            r = await sb.run("print('x')")
            assert r.ok
            assert sb.pool.ready == 1  # the run took a ready sandbox out of the pool for good
        await wait_pool_ready(sb, 2)
        # every run consumed one sandbox, and each was replaced by a new one
        assert sb.pool.spawned == before + 3


async def test_old_idle_sandboxes_are_recycled(open_sandbox: Callable[..., Sandbox]) -> None:
    async with open_sandbox(pool_size=1, preimport=(), pool_max_age_s=0.3) as sb:
        assert sb.pool is not None
        await wait_pool_ready(sb, 1)
        first = sb.pool.spawned
        pool = sb.pool
        assert await eventually(lambda: pool.spawned >= first + 2), "idle sandboxes were never replaced"
        assert (await sb.run("print('fresh')")).stdout == "fresh\n"


async def test_missing_preimport_still_gives_a_working_pool(open_sandbox: Callable[..., Sandbox]) -> None:
    async with open_sandbox(pool_size=1, preimport=("no_such_module_xyz", "json")) as sb:
        await wait_pool_ready(sb, 1)
        code = "import sys\nseen = ('json' in sys.modules, 'no_such_module_xyz' in sys.modules)\nimport json"
        r = await sb.run(code + "\nresult = seen")  # code importing json runs where json was pre-imported
    assert r.ok and r.result == "(True, False)"


async def test_limits_apply_to_warm_runs(open_sandbox: Callable[..., Sandbox]) -> None:
    async with open_sandbox(pool_size=1, preimport=()) as sb:
        await wait_pool_ready(sb, 1)
        r = await sb.run("import time\ntime.sleep(30)", RunLimits(timeout_s=0.5))
        assert r.timed_out and 500 <= r.duration_ms < 1100
        await wait_pool_ready(sb, 1)
        r = await sb.run("a = bytearray(300 * 1024 * 1024)", RunLimits(memory_mb=64))
        assert r.killed_reason == "memory"


async def test_other_directory_sizes_fall_back_to_a_cold_start(open_sandbox: Callable[..., Sandbox]) -> None:
    async with open_sandbox(pool_size=1, preimport=("json",)) as sb:
        await wait_pool_ready(sb, 1)
        r = await sb.run("import sys\nresult = 'json' in sys.modules", RunLimits(output_dir_mb=1))
        assert r.result == "False"  # not the pre-started sandbox: its working directory has another size
        assert sb.pool is not None and sb.pool.ready == 1


async def test_cancelled_warm_run_leaves_no_process(open_sandbox: Callable[..., Sandbox], token: str) -> None:
    async with open_sandbox(pool_size=1, preimport=()) as sb:
        await wait_pool_ready(sb, 1)
        task = asyncio.create_task(sb.run(daemon_code(token) + "import time\ntime.sleep(60)\n"))
        assert await eventually(lambda: bool(processes_with(token))), "the daemon never started"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await wait_gone(token) == []


async def test_closing_destroys_idle_sandboxes(open_sandbox: Callable[..., Sandbox]) -> None:
    async with open_sandbox(pool_size=2, preimport=()) as sb:
        await wait_pool_ready(sb, 2)
        assert sb.pool is not None
        pids = sb.pool.idle_pids
        assert len(pids) == 2 and all(_alive(pid) for pid in pids)
    assert not any(_alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
