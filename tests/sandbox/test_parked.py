"""A cold start's bwrap parked ahead of time inside its cgroups (sandbox/parked.py)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import pytest

from sandbox import Sandbox, api, parked, runner

from .conftest import eventually

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the cold path parks bwrap as root here")


def _waiting(sb: Sandbox) -> parked.Parked | None:
    return sb.parked_bwrap


async def _parked_now(sb: Sandbox) -> parked.Parked:
    assert await eventually(lambda: _waiting(sb) is not None, 30.0), "no bwrap was parked"
    waiting = _waiting(sb)
    assert waiting is not None
    return waiting


async def test_a_cold_run_starts_from_the_parked_bwrap_born_in_its_cgroups(
    open_sandbox: Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    used: list[runner.Slot] = []
    real = parked.unpark

    async def recording(*args: Any) -> runner.Slot:
        used.append(await real(*args))
        return used[-1]

    monkeypatch.setattr(parked, "unpark", recording)
    async with open_sandbox(pool_size=0) as sb:
        waiting = await _parked_now(sb)
        pid = waiting.slot.proc.pid
        result = await sb.run("import os; print(len(os.listdir('/proc/self/task')))")
        assert result.ok, result.to_json()
        assert [s.proc.pid for s in used] == [pid]
        # every process was created inside: no move at READY was needed
        assert used[0].born_inside and used[0].cgroup is not None
        # the next cold run gets a fresh one, parked after this run
        assert (await _parked_now(sb)).slot.proc.pid != pid


async def test_a_parked_cold_run_gets_its_own_limits(open_sandbox: Callable[..., Sandbox]) -> None:
    async with open_sandbox(pool_size=0) as sb:
        await _parked_now(sb)
        limits = sb.cfg.default_limits.replace(tmp_mb=8, memory_mb=96)
        code = (
            "import os\n"
            "st = os.statvfs('/tmp')\n"
            "print(st.f_blocks * st.f_frsize // (1 << 20))\n"
            "x = bytearray(300 * (1 << 20))\n"
        )
        result = await sb.run(code, limits)
        assert result.stdout.split()[:1] == ["8"], result.to_json()
        assert result.killed_reason == "memory", result.to_json()


async def test_a_parked_bwrap_that_never_gets_its_options_does_not_start(
    open_sandbox: Callable[..., Sandbox],
) -> None:
    # the bot died while a bwrap was parked: its options pipe is at EOF with nothing in it
    async with open_sandbox(pool_size=0) as sb:
        assert sb._env is not None
        waiting = await parked.park(sb._env, sb.cfg.default_limits, None)
        try:
            waiting.close_options()
            async with asyncio.timeout(30):
                code = await waiting.slot.proc.wait()
                await waiting.slot.output.drain()
            assert code != 0
            assert b"hostname" in bytes(waiting.slot.output.cap.stderr)
            assert await waiting.slot.report.reader.read() == b""  # no supervisor ever ran
        finally:
            await parked.discard(waiting)


async def test_closing_removes_the_parked_bwrap_and_its_cgroups(open_sandbox: Callable[..., Sandbox]) -> None:
    async with open_sandbox(pool_size=0) as sb:
        waiting = await _parked_now(sb)
        pid = waiting.slot.proc.pid
        group = waiting.slot.cgroup
        uid = waiting.slot.uid
    assert waiting.slot.proc.returncode is not None  # killed and reaped
    assert pid > 0
    if group is not None:
        assert not any(path.exists() for path in group.dirs)
    if uid is not None and sb.uid_pool is not None:
        assert sb.uid_pool.free == sb.uid_pool.size


async def test_the_options_fit_one_atomic_write(open_sandbox: Callable[..., Sandbox]) -> None:
    async with open_sandbox(pool_size=0) as sb:
        waiting = await _parked_now(sb)
        assert sb._env is not None
        big = sb.cfg.default_limits.replace(tmp_mb=4096, output_dir_mb=4096)
        data = parked.options(sb._env, waiting, big)
    assert 0 < len(data) <= parked.MAX_OPTIONS
    assert b"--unshare-uts\0" in data and b"--hostname\0" not in data  # the sentinel stays outside


async def test_a_parked_cold_run_gets_its_code_with_the_options_and_every_byte_counts(
    open_sandbox: Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[bool] = []
    real = api.execute

    async def recording(*args: Any) -> Any:
        sent.append(args[5])
        return await real(*args)

    monkeypatch.setattr(api, "execute", recording)
    async with open_sandbox(pool_size=0) as sb:
        await _parked_now(sb)
        sent.clear()  # the start-up self-test
        limits = sb.cfg.default_limits.replace(max_output_bytes=10_000)
        flood = await sb.run("import sys\nfor _ in range(1000): sys.stdout.write('x' * 1000)\n", limits)
        await _parked_now(sb)
        big = "x = 1\n" + "#" * (parked.EARLY_PAYLOAD + 10) + "\nprint(x)\n"  # too big to go in early
        late = await sb.run(big)
    assert sent == [True, False]
    assert flood.truncated and flood.killed_reason == "output", flood.to_json()
    assert len(flood.stdout) <= 10_000
    assert late.ok and late.stdout.strip() == "1", late.to_json()
