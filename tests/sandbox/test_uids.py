"""One unprivileged host uid per concurrent slot (root mode): quotas per user are no longer shared."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from sandbox import RunLimits, Sandbox, SandboxConfig, uidpool
from tests.sandbox.conftest import eventually, host_uids

if __package__:
    from . import test_containment as kit
else:
    import test_containment as kit

canary = kit.canary  # shared fixture, found by name
root_only = pytest.mark.skipif(
    os.geteuid() != 0, reason="per-slot uids need a root bot (as an ordinary user every run is the bot's uid)"
)
VICTIM = (
    "import ctypes, fcntl, os\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "fd = libc.inotify_init1(0)\n"
    "r, w = os.pipe()\n"
    "size = fcntl.fcntl(r, 1032)\n"  # F_GETPIPE_SZ
    "try:\n"
    "    grown = fcntl.fcntl(w, 1031, 1 << 20)\n"  # F_SETPIPE_SZ
    "except OSError as e:\n"
    "    grown = -e.errno\n"
    "result = (fd >= 0 or -ctypes.get_errno(), size, grown)\n"
)


@root_only
async def test_a_run_hogging_user_quotas_does_not_starve_a_concurrent_run(canary: str) -> None:
    hog_limits = RunLimits(timeout_s=30.0, cpu_s=10.0, max_open_files=2048, max_output_bytes=1 << 20)
    async with kit.open_sandbox(pool_size=0, max_concurrent=2) as sb:
        assert sb.layers["uid"] == "per-slot", sb.layers
        hog = asyncio.ensure_future(kit.run(sb, kit.program("uid_quota_hog", stop_after_s=25), hog_limits))
        try:
            holding = await wait_for_hog(sb)
            victim = await kit.run(sb, VICTIM, RunLimits(timeout_s=20.0))
        finally:
            hog.cancel()
            with pytest.raises(asyncio.CancelledError):
                await hog
        assert holding, "the hog never took its quotas"
        assert victim.result == "(True, 65536, 1048576)", (victim.to_json(), holding)
        await wait_uids_back(sb)


async def wait_for_hog(sb: Sandbox) -> bool:
    """Wait until some process of a sandbox uid holds 100+ inotify instances (what the hog reports)."""

    async def holding() -> bool:
        return await asyncio.to_thread(_someone_holds_inotify, 100)

    for _ in range(600):  # polling /proc: there is no event for another process's fd table
        if await holding():
            return True
        await asyncio.sleep(0.05)
    return False


def _someone_holds_inotify(count: int) -> bool:
    uids = kit.sandbox_uid(SandboxConfig.from_env())
    for pid, (_, owner, _, _) in kit.process_table().items():
        if owner not in uids:
            continue
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        if sum(link == "anon_inode:inotify" for link in links) >= count:
            return True
    return False


async def wait_uids_back(sb: Sandbox) -> None:
    """Fail unless every uid of the pool is free again (each is re-checked once its run is destroyed)."""
    pool = sb.uid_pool
    assert pool is not None
    for _ in range(200):
        waiting = sb.parked_bwrap  # the bwrap parked for the next cold run holds a uid of its own
        held = 1 if waiting is not None and waiting.slot.uid is not None else 0
        if pool.free + held == pool.size:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"uids not returned: {pool.free} of {pool.size} free")


@root_only
async def test_concurrent_runs_get_different_uids_and_give_them_back(canary: str) -> None:
    code = "import time; time.sleep(1.5)"
    async with kit.open_sandbox(pool_size=0, max_concurrent=2) as sb:
        pool = sb.uid_pool
        assert pool is not None
        runs = [asyncio.ensure_future(kit.run(sb, code)) for _ in range(2)]
        seen: set[int] = set()
        for _ in range(150):
            await asyncio.sleep(0.02)
            tree = await asyncio.to_thread(lambda: kit.descendants(kit.process_table()))
            seen = {row[1] for row in tree.values() if row[1] in kit.sandbox_uid(sb.cfg)}
            if len(seen) >= 2:
                break
        results = await asyncio.gather(*runs)
        assert all(r.ok for r in results), [r.to_json() for r in results]
        assert len(seen) == 2, f"two concurrent runs ran as host uids {seen}"
        span = sb.cfg.uid_range
        assert span is not None and all(span[0] <= u <= span[1] for u in seen), seen
        await wait_uids_back(sb)


@root_only
async def test_a_uid_rests_until_its_last_process_is_gone() -> None:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("util-linux setpriv is not installed")
    pool = uidpool.UidPool([62029], None)
    uid = await pool.acquire()
    proc = await asyncio.create_subprocess_exec(
        setpriv, "--reuid=62029", "--regid=62029", "--clear-groups", "sleep", "30"
    )
    try:
        # the run's process must carry the uid before the release (a loaded machine can be slow to switch)
        assert await eventually(lambda: 62029 in host_uids(proc.pid)), "setpriv never switched uid"
        await pool.release(uid)
        assert pool.free == 0, "a uid came back while a process of its run was alive"
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await pool.acquire()
    finally:
        proc.kill()
        await proc.wait()
    assert await asyncio.wait_for(pool.acquire(), 5) == 62029


def test_uid_range_setting_and_conflicts() -> None:
    assert uidpool.parse_range("62000-62031") == (62000, 62031)
    for bad in ("62031-62000", "0-10", "abc", "62000"):
        with pytest.raises(ValueError):
            uidpool.parse_range(bad)
    with pytest.raises(ValueError, match="UIDS"):
        SandboxConfig.from_env({"CODEBOT_SANDBOX_UIDS": "1-2"})
    assert SandboxConfig.from_env({"CODEBOT_SANDBOX_UIDS": "off"}).uid_range is None
    assert "passwd entry" in uidpool.conflicts(65534, 65534).get(65534, "")  # nobody


async def test_two_pools_on_one_host_never_share_a_uid(tmp_path: Path) -> None:
    """Two Sandbox instances (or two bots) over one range: the uid locks keep their slots apart."""
    first, second = uidpool.UidPool([62010, 62011], tmp_path), uidpool.UidPool([62010, 62011], tmp_path)
    a = await first.acquire()
    b = await second.acquire()
    assert a != b, "two pools handed out the same uid"
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await second.acquire()  # its other uid is the first pool's
    await first.release(a, gone=True)
    assert await asyncio.wait_for(second.acquire(), 5) == a


@root_only
async def test_without_a_pids_cgroup_a_slot_uid_makes_the_process_cap_exact(canary: str) -> None:
    """RLIMIT_NPROC counts per uid: with a uid of its own, a run gets its cap, not the pool's slack."""
    limits = kit.LIMITS.replace(max_processes=16)
    async with kit.open_sandbox(pool_size=0, cgroup="off") as sb:
        assert (sb.layers["pids"], sb.layers["uid"]) == ("rlimit", "per-slot"), sb.layers
        found = kit.report(await kit.run(sb, kit.program("fork_loop", child_sleep_s=30), limits))
        await kit.assert_run_left_nothing(sb)
    assert 12 <= found["children"] <= limits.max_processes, found
