"""CPU per run, all processes together: the host's watcher (cgroup or /proc) and the CFS quota."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time

import pytest

from sandbox import RunLimits, SandboxConfig, cgroups, cpuwatch

if __package__:
    from . import test_containment as kit
else:
    import test_containment as kit

canary = kit.canary  # shared fixture, found by name
# Generous wall time: on a loaded 2-core machine 2 CPU seconds can take several wall seconds.
QUOTA = 0.5  # below what a loaded 2-core box still gives 4 busy threads, so the cap shows
LIMITS = RunLimits(timeout_s=30.0, cpu_s=2.0, max_output_bytes=1 << 20)


@pytest.mark.parametrize("mode", ["auto", "off"])
async def test_work_relayed_through_fresh_children_is_killed_at_the_run_cpu_cap(
    canary: str, mode: str
) -> None:
    """Each generation stays far under RLIMIT_CPU; only the run's total can stop the chain."""
    async with kit.open_sandbox(pool_size=0, cgroup=mode) as sb:
        assert sb.layers["cpu"] in ("cgroup-v1", "cgroup-v2", "proc"), sb.layers
        if mode == "off":
            assert sb.layers["cpu"] == "proc", sb.layers
        started = time.monotonic()
        result = await kit.run(sb, kit.program("cpu_relay", stop_after_s=28), LIMITS)
        elapsed = time.monotonic() - started
        assert result.killed_reason == "cpu", result.to_json()
        assert result.layers["cpu"] == sb.layers["cpu"], result.to_json()
        assert not result.timed_out and elapsed < LIMITS.timeout_s - 5, f"{elapsed:.1f} s: {result.to_json()}"
        assert '"finished"' not in result.stdout, "the chain ran to its safety valve"
        await kit.assert_run_left_nothing(sb)


async def test_cfs_quota_holds_a_run_to_its_share_of_cpu(canary: str) -> None:
    support = cgroups.detect(SandboxConfig.from_env().cgroup)
    if not support.cpu_quota:
        pytest.skip(f"no cpu controller for a CFS quota here ({support.detail})")
    code = (
        "import hashlib, threading, time\n"
        "buf = b'x' * (1 << 18)\n"
        "def spin(until):\n"
        "    while time.monotonic() < until:\n"
        "        hashlib.sha256(buf).digest()\n"
        "until = time.monotonic() + 1.5\n"
        "t0, c0 = time.monotonic(), time.process_time()\n"
        "ts = [threading.Thread(target=spin, args=(until,)) for _ in range(3)]\n"
        "[t.start() for t in ts]; spin(until); [t.join() for t in ts]\n"
        "result = (time.process_time() - c0) / (time.monotonic() - t0)\n"
    )
    async with kit.open_sandbox(pool_size=0, cpu_quota=QUOTA) as sb:
        result = await kit.run(sb, code, LIMITS.replace(cpu_s=10.0))
    assert result.ok, result.to_json()
    assert float(result.result or "9") <= QUOTA * 1.3, f"the run used {result.result} CPUs at once"


async def test_proc_meter_counts_children_that_are_gone() -> None:
    """Reaped children count through their parent's cutime; unreaped ones as zombies."""
    code = (
        "import os, time\n"
        "r, w = os.pipe()\n"
        "def burn():\n"
        "    end = time.thread_time() + 0.3\n"
        "    while time.thread_time() < end: pass\n"
        "    os.write(w, b'x')\n"  # the CPU is spent: alive or a zombie, it must count
        "    os._exit(0)\n"
        "a = os.fork()\n"
        "if a == 0: burn()\n"
        "os.waitpid(a, 0)\n"  # reaped: in our cutime
        "b = os.fork()\n"
        "if b == 0: burn()\n"
        "os.read(r, 1)\n"
        "os.read(r, 1)\n"  # b is never waited for: a zombie while the meter looks
        "os.write(1, b'done\\n')\n"
        "time.sleep(30)\n"
    )
    proc = await asyncio.create_subprocess_exec(
        "/usr/bin/python3.11", "-I", "-S", "-c", code, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"done\n"
        used = await asyncio.to_thread(cpuwatch.ProcMeter(proc.pid).used_ns)
        assert used is not None and used >= 0.5e9, f"only {used} ns counted for 0.6 s of children"
    finally:
        proc.kill()
        await proc.wait()


async def test_cpu_watcher_fires_only_past_the_cap() -> None:
    class Counter:
        def __init__(self) -> None:
            self.now = 5_000_000_000  # the warm slot's imports: not the run's

        def used_ns(self) -> int | None:
            self.now += 100_000_000
            return self.now

    used = await asyncio.wait_for(cpuwatch.watch(Counter(), 0.5, poll_s=0.01), 10)
    assert 0.5 <= used < 0.7, used


def test_cgroup_off_setting_is_read() -> None:
    cfg = SandboxConfig.from_env({"CODEBOT_SANDBOX_CGROUP": "off", "CODEBOT_SANDBOX_CPU_QUOTA": "1.5"})
    assert (cfg.cgroup, cfg.cpu_quota) == ("off", 1.5)
    with pytest.raises(ValueError, match="CGROUP"):
        SandboxConfig.from_env({"CODEBOT_SANDBOX_CGROUP": "v3"})
    assert not cgroups.detect("off").enabled
    assert dataclasses.replace(cfg, cgroup="auto").cgroup == "auto"
    assert os.sysconf("SC_CLK_TCK") > 0


async def test_an_unreadable_counter_never_looks_like_a_run_over_its_cap() -> None:
    class Broken:
        def used_ns(self) -> int | None:
            raise OSError("the cgroup is gone")

    watcher = asyncio.ensure_future(cpuwatch.watch(Broken(), 0.01, poll_s=0.01))
    done, _ = await asyncio.wait({watcher}, timeout=0.3)
    watcher.cancel()
    assert not done, "the watcher fired (or raised) on a counter it could not read"
