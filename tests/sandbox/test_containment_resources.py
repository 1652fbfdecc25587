"""Containment suite, part 2: exhausting the host (processes, memory, disk, CPU, output, time).

Each abuse program carries a safety valve so that a broken sandbox cannot take the test machine down;
the assertions sit far below those valves. Host-side measurements (process counts, free disk, event
loop lag) are taken while the run is going on, not trusted from the program's own report.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from sandbox import RunLimits, RunResult, Sandbox, cgroups

if __package__:  # tests/sandbox is a package
    from . import test_containment as kit
else:  # pytest put this directory on sys.path
    import test_containment as kit

canary, cold, either = kit.canary, kit.cold, kit.either  # shared fixtures, found by name
MARGIN_S = 0.5  # how late a kill may land after its limit
# Without a pids cgroup (an ordinary user's bot, no delegated subtree) the cap is RLIMIT_NPROC, which counts
# every task of the uid: the bot's own threads and the other slots' processes too. The cap is then looser
# by that base, but it must still hold.
NPROC_SLACK = 0 if cgroups.available() else 64


def process_cap(limits: RunLimits) -> int:
    """Return the most processes a run may reach here (exact with a pids cgroup)."""
    return limits.max_processes + NPROC_SLACK


async def while_running(
    sb: Sandbox, code: str, limits: RunLimits, sample: Callable[[], Awaitable[None]]
) -> RunResult:
    """Run code and call `sample` every 20 ms until the run returns."""
    task = asyncio.ensure_future(kit.run(sb, code, limits))
    while not task.done():
        await sample()
        await asyncio.wait({task}, timeout=0.02)
    return task.result()


# ---------------------------------------------------------------- processes


async def test_fork_bomb_is_capped_and_killed(cold: Sandbox) -> None:
    limits = kit.LIMITS.replace(timeout_s=2.0, max_processes=32)
    uid, peak = kit.sandbox_uid(cold.cfg), [0]
    host_spawns: list[float] = []

    async def sample() -> None:
        peak[0] = max(peak[0], len(await asyncio.to_thread(kit.stray_processes, uid)))
        if len(host_spawns) < 3:  # the host can still start processes while the bomb goes off
            started = time.monotonic()
            proc = await asyncio.create_subprocess_exec("/bin/true")
            await asyncio.wait_for(proc.wait(), 5)
            host_spawns.append(time.monotonic() - started)

    started = time.monotonic()
    result = await while_running(cold, kit.program("fork_bomb", stop_after_s=8), limits, sample)
    elapsed = time.monotonic() - started
    assert elapsed < limits.timeout_s + 2, f"the bomb outlived its timeout: {elapsed:.1f} s"
    assert result.killed_reason in ("timeout", "cpu"), result.to_json()
    forks = kit.report(result)["forks"]
    assert forks <= process_cap(limits), f"{forks} forks succeeded with a cap of {limits.max_processes}"
    assert peak[0] <= process_cap(limits) + 4, f"{peak[0]} sandbox processes at once on the host"
    assert host_spawns and max(host_spawns) < 2, f"the host struggled to spawn: {host_spawns}"
    await kit.assert_run_left_nothing(cold)


async def test_fork_loop_hits_the_process_cap_and_children_die_with_the_run(cold: Sandbox) -> None:
    limits = kit.LIMITS.replace(max_processes=16)
    result = await kit.run(cold, kit.program("fork_loop", child_sleep_s=30), limits)
    found = kit.report(result)
    assert found["children"] <= process_cap(limits), found
    assert found["error"] is not None and "errno=11" in found["error"], found  # EAGAIN
    assert not result.timed_out, "sleeping children kept the run alive after the program ended"
    await kit.assert_run_left_nothing(cold)


# ---------------------------------------------------------------- memory


async def test_memory_bomb_stops_at_the_limit(cold: Sandbox) -> None:
    limits = kit.LIMITS.replace(memory_mb=128, timeout_s=5.0)
    result = await kit.run(cold, kit.program("memory_bomb", safety_cap_mb=1024), limits)
    held = [int(ln.split()[1]) for ln in result.stderr.splitlines() if ln.startswith("held ")]
    peak = max(held, default=0)
    assert peak <= limits.memory_mb, f"held {peak} MiB with a {limits.memory_mb} MiB limit"
    # killed by the memory cgroup, or (rlimit mode) the program saw MemoryError and stopped by itself
    stopped_cleanly = '"stopped": "MemoryError"' in result.stdout
    assert result.killed_reason == "memory" or stopped_cleanly, result.to_json()
    await kit.assert_run_left_nothing(cold)


async def test_memory_limit_within_tolerance(cold: Sandbox) -> None:
    limits = kit.LIMITS.replace(memory_mb=128)
    small = await kit.run(cold, kit.program("alloc", mb=50), limits)
    assert small.ok and "allocated 50 MiB" in small.stdout, small.to_json()
    big = await kit.run(cold, kit.program("alloc", mb=300), limits)
    assert not big.ok and "allocated" not in big.stdout, big.to_json()
    assert big.killed_reason == "memory", big.to_json()
    await kit.assert_run_left_nothing(cold)


# ---------------------------------------------------------------- disk


def _free_bytes(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


async def _fill(sb: Sandbox, target: str, limits: RunLimits) -> tuple[RunResult, int]:
    """Run the disk filler against target; return the result and the most host disk it took meanwhile."""
    import tempfile  # where run directories live on the host

    host = tempfile.gettempdir()
    before = _free_bytes(host)
    lowest = [before]

    async def sample() -> None:
        lowest[0] = min(lowest[0], _free_bytes(host))

    result = await while_running(
        sb, kit.program("disk_fill", target=target, safety_cap_mb=512), limits, sample
    )
    return result, before - lowest[0]


async def test_disk_fill_of_tmp_is_bounded(cold: Sandbox) -> None:
    limits = kit.LIMITS.replace(tmp_mb=16)
    result, host_used = await _fill(cold, "/tmp", limits)
    found = kit.report(result)
    assert found["error"] is not None, f"filled {found['written_mb']} MiB without an error"
    assert found["written_mb"] <= limits.tmp_mb, found
    assert host_used < 256 * kit.MiB, f"host disk dropped by {host_used / kit.MiB:.0f} MiB"
    await kit.assert_run_left_nothing(cold)


async def test_disk_fill_of_the_output_directory_is_bounded(cold: Sandbox) -> None:
    limits = kit.LIMITS.replace(output_dir_mb=16)
    result, host_used = await _fill(cold, ".", limits)
    found = kit.report(result)
    assert found["error"] is not None, f"filled {found['written_mb']} MiB without an error"
    assert found["written_mb"] <= limits.output_dir_mb, found
    assert host_used < 256 * kit.MiB, f"host disk dropped by {host_used / kit.MiB:.0f} MiB"
    assert sum(f.size for f in result.files) <= limits.max_files_total_bytes
    assert len(result.files) <= limits.max_files
    await kit.assert_run_left_nothing(cold)


# ---------------------------------------------------------------- CPU and time


async def test_infinite_loop_is_stopped_by_the_cpu_limit(either: Sandbox) -> None:
    # warm too: the pool's pre-import CPU time must not eat into, or pad, the code's CPU budget
    limits = kit.LIMITS.replace(timeout_s=2.5, cpu_s=1.0)
    result = await kit.run(either, kit.program("infinite_loop"), limits)
    assert result.killed_reason in ("cpu", "timeout"), result.to_json()  # timeout: a heavily loaded host
    assert result.exit_code > 128, result.to_json()
    assert result.duration_ms <= (limits.timeout_s + MARGIN_S) * 1000
    if result.killed_reason == "cpu":  # RLIMIT_CPU counts whole seconds: it lands within ~0.5 s either way
        assert result.duration_ms >= (limits.cpu_s - 0.5) * 1000, "the code lost much of its CPU budget"
    await kit.assert_run_left_nothing(either)


async def test_sleep_past_the_timeout_is_killed_on_time_and_keeps_earlier_output(cold: Sandbox) -> None:
    limits = kit.LIMITS.replace(timeout_s=1.0)
    started = time.monotonic()
    result = await kit.run(cold, kit.program("sleep_forever"), limits)
    elapsed = time.monotonic() - started
    assert result.timed_out and result.killed_reason == "timeout", result.to_json()
    assert result.exit_code == 128 + signal.SIGKILL, result.to_json()
    assert 1000 <= result.duration_ms <= (1.0 + MARGIN_S) * 1000, result.duration_ms
    assert elapsed < 1.0 + 1.0, f"the caller waited {elapsed:.2f} s for a 1 s timeout"
    assert "sleeping" in result.stdout, "output printed before the kill was lost"
    await kit.assert_run_left_nothing(cold)


async def test_busy_threads_are_held_by_the_cpu_cap_and_the_host_stays_responsive(cold: Sandbox) -> None:
    limits = kit.LIMITS.replace(timeout_s=3.0, cpu_s=1.0, max_processes=64)
    cpu_seen: dict[int, float] = {}  # pid -> most CPU seconds seen (threads included)
    lag, last = [0.0], [time.monotonic()]

    async def sample() -> None:
        now = time.monotonic()
        lag[0] = max(lag[0], now - last[0] - 0.02)
        last[0] = now
        for pid, cpu in (await asyncio.to_thread(_descendants_cpu_s)).items():
            cpu_seen[pid] = max(cpu, cpu_seen.get(pid, 0.0))

    result = await while_running(
        cold, kit.program("busy_threads", threads=48, stop_after_s=8), limits, sample
    )
    assert kit.report(result)["started"] > 8, "the storm did not start"
    assert result.killed_reason in ("cpu", "timeout"), result.to_json()
    assert result.duration_ms <= (limits.timeout_s + MARGIN_S) * 1000
    cpu_used = sum(cpu_seen.values())
    assert 0.5 < cpu_used <= limits.cpu_s + 0.5, f"{cpu_used:.2f} s of CPU with a {limits.cpu_s} s cap"
    assert lag[0] < 1.0, f"the host's event loop stalled for {lag[0]:.2f} s"
    await kit.assert_run_left_nothing(cold)


def _descendants_cpu_s() -> dict[int, float]:
    """Return the CPU seconds (all threads) of every process below this one, read from /proc."""
    tick, table = os.sysconf("SC_CLK_TCK"), {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    mine, found = os.getpid(), {}
    for pid, (parent, cpu) in table.items():
        for _ in range(64):  # bounded walk up the tree
            if parent == mine:
                found[pid] = cpu
                break
            if parent not in table:
                break
            parent = table[parent][0]
    return found


# ---------------------------------------------------------------- output


async def test_stdout_flood_is_truncated_and_killed_fast(cold: Sandbox) -> None:
    for stream in ("stdout", "stderr"):
        limits = kit.LIMITS.replace(max_output_bytes=64 * 1024, timeout_s=10.0)
        started = time.monotonic()
        result = await kit.run(cold, kit.program("output_flood", stream=stream), limits)
        elapsed = time.monotonic() - started
        kept = len(result.stdout.encode()) + len(result.stderr.encode())
        assert result.truncated and result.killed_reason == "output", result.to_json()
        assert kept <= limits.max_output_bytes + 1024, f"{kept} bytes kept ({stream})"
        assert (result.stdout + result.stderr).startswith("AAAA"), "the start of the output was lost"
        assert elapsed < 2.0, f"a {stream} flood took {elapsed:.2f} s to stop"
    await kit.assert_run_left_nothing(cold)


# ---------------------------------------------------------------- neighbours


NEIGHBOUR = """
import subprocess, sys
buffer = bytearray(64 << 20)  # memory and a child process: what the bombs next door are exhausting
out = subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True, timeout=5)
result = out.stdout.strip()
"""


async def test_a_run_exhausting_its_limits_does_not_starve_a_concurrent_run(cold: Sandbox) -> None:
    bomb = kit.run(cold, kit.program("fork_bomb", stop_after_s=8), kit.LIMITS.replace(timeout_s=2.0))
    hog_limits = kit.LIMITS.replace(memory_mb=128, timeout_s=2.0)
    hog = kit.run(cold, kit.program("memory_bomb", safety_cap_mb=1024), hog_limits)

    async def neighbour() -> RunResult:
        await asyncio.sleep(0.5)  # the bomb and the hog are at their worst by now
        return await kit.run(cold, NEIGHBOUR, kit.LIMITS.replace(memory_mb=256))

    _, _, calm = await asyncio.gather(bomb, hog, neighbour())
    assert calm.ok and calm.result == "'42'", f"a neighbour's run suffered: {calm.to_json()}"
    await kit.assert_run_left_nothing(cold)
