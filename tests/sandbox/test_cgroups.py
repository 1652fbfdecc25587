"""cgroup v1 and v2: real groups where this machine has them, file formats against a temporary tree.

This machine runs v1 for memory, pids and cpu, and mounts a cgroup2 hierarchy (only hugetlb delegated)
at /sys/fs/cgroup/unified: there v2 groups are created, joined, read (cpu.stat) and killed (cgroup.kill)
for real, and a whole sandbox run is accounted through one. memory.max, pids.max and cpu.max cannot be
enforced on that mount, so only what the code writes and parses for them is checked, on a fake tree.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import RunLimits, cgroups, cgroups_v1, cgroups_v2
from tests.sandbox.conftest import eventually, processes_with

if __package__:
    from . import test_containment as kit
else:
    import test_containment as kit

canary = kit.canary  # shared fixture, found by name


def _unified() -> Path | None:
    mount = cgroups_v2.mount_point()
    if mount is None or os.geteuid() != 0 or not os.access(mount, os.W_OK):
        return None
    return mount


@pytest.fixture
def v2_dir() -> Iterator[Path]:
    """A fresh, writable group in the real cgroup2 hierarchy, removed afterwards."""
    mount = _unified()
    if mount is None:
        pytest.skip("no writable cgroup2 hierarchy (needs root and a cgroup2 mount)")
    path = mount / f"codebot-test-{os.getpid()}-{secrets.token_hex(4)}"
    path.mkdir()
    try:
        yield path
    finally:
        for child in path.glob("*/"):
            cgroups_v2.V2Group(child, frozenset()).remove(wait_s=2.0)
        cgroups_v1.rmdir(path, 2.0)


async def test_a_real_v2_group_counts_cpu_and_is_killed_whole(v2_dir: Path) -> None:
    support = cgroups.detect("v2", v2_dir, prepare=True)
    assert (support.version, support.cpu) == ("v2", True), support
    group = cgroups.create(support, "t1")
    token = "codebot-burner-" + secrets.token_hex(6)
    burner = await asyncio.create_subprocess_exec(
        "/usr/bin/python3.11",
        "-c",
        # forks only once it is in the group (the test says so on stdin); bounded, so that a failed test
        # leaves nothing burning CPU for long
        "import os, sys, time\nsys.stdin.readline()\nos.fork()\n"
        "end = time.monotonic() + 30\nwhile time.monotonic() < end: pass",
        token,
        stdin=asyncio.subprocess.PIPE,
    )
    try:
        await asyncio.to_thread(group.attach, [burner.pid])
        assert burner.stdin is not None
        burner.stdin.write(b"go\n")
        await burner.stdin.drain()
        assert not group.missing(burner.pid)
        start = group.cpu_usage_ns()
        assert start is not None
        # a loaded machine gives the burner little CPU: wait for the counter to move, not a fixed time
        assert await eventually(lambda: (group.cpu_usage_ns() or 0) - start > 50_000_000, 20.0), start
        await asyncio.to_thread(group.kill_all)  # cgroup.kill: the forked child too
        assert await asyncio.wait_for(burner.wait(), 10) == -9
        assert await eventually(lambda: not cgroups_v1.procs(group.path))
        assert await eventually(lambda: not processes_with(token)), "the forked child outlived cgroup.kill"
    finally:
        if burner.returncode is None:
            burner.kill()
            await burner.wait()
        await asyncio.to_thread(group.remove)
    assert not group.path.exists()


async def test_a_sandbox_run_is_accounted_through_a_v2_group(v2_dir: Path, canary: str) -> None:
    async with kit.open_sandbox(pool_size=0, cgroup="v2", cgroup_root=v2_dir) as sb:
        assert (sb.layers["cpu"], sb.layers["memory"]) == ("cgroup-v2", "rlimit"), sb.layers
        limits = RunLimits(timeout_s=20.0, cpu_s=1.5, max_output_bytes=1 << 20)
        result = await kit.run(sb, kit.program("cpu_relay", stop_after_s=18), limits)
        assert result.killed_reason == "cpu", result.to_json()
        assert result.layers["cpu"] == "cgroup-v2"
        await kit.assert_run_left_nothing(sb)
    leftover = await asyncio.to_thread(lambda: [p.name for p in v2_dir.glob("run-*")])
    assert leftover == [], f"run groups left behind: {leftover}"


def test_v2_limits_are_written_in_the_kernel_formats(tmp_path: Path) -> None:
    group = cgroups_v2.V2Group(tmp_path, frozenset({"memory", "pids", "cpu"}))
    group.set_limits(256 << 20, 32, 1.5)
    assert (tmp_path / "memory.max").read_text() == str(256 << 20)
    assert (tmp_path / "memory.swap.max").read_text() == "0"
    assert (tmp_path / "pids.max").read_text() == "32"
    assert (tmp_path / "cpu.max").read_text() == "150000 100000"
    only_cpu = tmp_path / "c"
    only_cpu.mkdir()
    cgroups_v2.V2Group(only_cpu, frozenset()).set_limits(1, 1, 1.0)
    assert list(only_cpu.iterdir()) == [], "wrote limits for controllers that are not delegated"


def test_v2_counters_are_parsed_and_bounded(tmp_path: Path) -> None:
    group = cgroups_v2.V2Group(tmp_path, frozenset({"memory"}))
    assert group.cpu_usage_ns() is None and not group.oom_killed()
    (tmp_path / "cpu.stat").write_text("usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\n")
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n")
    assert group.cpu_usage_ns() == 1_234_567_000
    assert group.oom_killed()
    (tmp_path / "memory.events").write_text("oom_kill x\n" + "junk\n" * 10_000)
    assert not group.oom_killed()


def test_v2_mount_and_own_group_are_found() -> None:
    info = (
        "41 31 0:35 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n"
        "30 24 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n"
    )
    assert cgroups_v2.mount_point(info) == Path("/sys/fs/cgroup/unified")
    assert cgroups_v2.mount_point("30 24 0:26 / /x rw - tmpfs tmpfs rw\n") is None
    unit = "/system.slice/codebot.service"
    assert cgroups_v2.own_path(f"1:cpu:/\n0::{unit}\n") == unit
    assert cgroups_v2.own_path("1:cpu:/\n") is None


def test_v1_cpu_quota_is_written(tmp_path: Path) -> None:
    dirs = {n: tmp_path / n for n in ("memory", "pids", "cpu", "cpuacct")}
    for path in dirs.values():
        path.mkdir()
    group = cgroups_v1.V1Group(dirs["memory"], dirs["pids"], dirs["cpu"], dirs["cpuacct"])
    group.set_limits(1 << 20, 8, 0.5)
    assert (dirs["cpu"] / "cpu.cfs_quota_us").read_text() == "50000"
    assert (dirs["cpu"] / "cpu.cfs_period_us").read_text() == "100000"
    (dirs["cpuacct"] / "cpuacct.usage").write_text("987654321\n")
    assert group.cpu_usage_ns() == 987654321
    shared = cgroups_v1.V1Group(dirs["memory"], dirs["pids"], dirs["cpu"], dirs["cpu"])
    assert len(shared.dirs) == 3, "co-mounted cpu,cpuacct must be one directory"


def test_detect_reports_why_nothing_is_there() -> None:
    off = cgroups.detect("off")
    assert not off.enabled and "off" in off.detail
    if os.geteuid() == 0 and cgroups_v1.available():
        assert cgroups.detect("auto").version == "v1"


async def test_groups_left_half_removed_by_a_dead_bot_are_swept() -> None:
    """A bot killed while removing a run's groups may leave only its cpu ones behind."""
    ctrls = cgroups_v1.controller_dirs()
    if not (cgroups_v1.available() and "cpu" in ctrls and "cpuacct" in ctrls):
        pytest.skip("needs root and the v1 memory, pids, cpu and cpuacct controllers")
    dead = await asyncio.create_subprocess_exec("/bin/true")
    await dead.wait()  # its pid is now a bot that died
    left = [ctrls[c] / cgroups_v1.GROUP / f"{dead.pid}-{secrets.token_hex(4)}" for c in ("cpu", "cpuacct")]
    for path in left:
        path.mkdir(parents=True)
    try:
        assert await asyncio.to_thread(cgroups_v1.sweep_stale) >= 1
        assert not any(p.exists() for p in left), left
    finally:
        for path in left:
            cgroups_v1.rmdir(path, 1.0)
