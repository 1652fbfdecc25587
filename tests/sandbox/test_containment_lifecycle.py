"""Containment suite, part 3: what outlives a run, what it hands back, and what runs see of each other."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path

import pytest

from sandbox import RunResult, Sandbox, SandboxConfig

if __package__:  # tests/sandbox is a package
    from . import test_containment as kit
else:  # pytest put this directory on sys.path
    import test_containment as kit

canary, cold, warm, either = kit.canary, kit.cold, kit.warm, kit.either  # shared fixtures, found by name
UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\<>@`]")  # path tricks, terminal escapes, chat mentions/markup


@pytest.fixture
def run_dirs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Make the sandbox create its host run directories where the test can watch them."""
    parent = Path(tempfile.mkdtemp(prefix="codebot-containment-"))
    parent.chmod(0o755)  # the sandbox uid resolves its bind sources itself
    monkeypatch.setattr(tempfile, "tempdir", str(parent))
    yield parent
    shutil.rmtree(parent, ignore_errors=True)


def _host_files(root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob("*")]


# ---------------------------------------------------------------- daemons and kills


async def test_double_forked_daemon_dies_with_the_run(cold: Sandbox, run_dirs: Path) -> None:
    token = "daemon-" + secrets.token_hex(6)
    async with kit.listeners() as net:
        code = kit.program("daemon", token=token, tcp_port=net["tcp_port"], delay_s=0.5, live_s=1.0)
        started, seen_dirs = time.monotonic(), set()
        task = asyncio.ensure_future(kit.run(cold, code))
        while not task.done():  # the working directory is a tmpfs inside: nothing of it on the host
            seen_dirs.update(os.listdir(run_dirs))
            await asyncio.wait({task}, timeout=0.005)
        result, elapsed = task.result(), time.monotonic() - started
        assert not seen_dirs or cold.isolation != "full", f"the run made host directories: {seen_dirs}"
        assert "daemon-marker.txt" not in [f.name for f in result.files], "a daemon wrote after the run"
        assert kit.reports(result), f"the program did not run: {result.to_json()}"
        assert not result.timed_out and elapsed < 2.0, f"a daemon holding stdout kept the run {elapsed:.1f} s"
        await kit.assert_no_strays(kit.sandbox_uid(cold.cfg))
        await asyncio.sleep(1.8)  # past the daemons' delay and life: anything they did would show now
        assert net["contacts"] == [], f"a daemon reached the bot's port after the run: {net['contacts']}"
    leftovers = await asyncio.to_thread(_host_files, run_dirs)
    assert leftovers == [], f"the run left files on the host (a daemon's marker?): {leftovers}"


async def test_killing_pid1_the_parent_and_everything_ends_only_the_run(cold: Sandbox) -> None:
    result = await kit.run(cold, kit.program("kill_parent", bot_pid=os.getpid()))
    steps = {k: v for r in kit.reports(result) for k, v in r.items() if k != "pid"}
    assert "unsafe" not in steps, f"the pid namespace is not private: {steps}"
    assert steps.get("bot", "").startswith("ERR"), f"the bot's pid could be signalled: {steps}"
    assert "pid1" in steps, f"the program stopped early: {steps}"
    assert not result.timed_out, f"the run did not end after the kills: {steps}"
    await kit.assert_run_left_nothing(cold)
    after = await kit.run(cold, "print('still serving')")
    assert after.ok and after.stdout == "still serving\n", "the sandbox broke after a run killed its pid 1"


# ---------------------------------------------------------------- what comes back


async def test_links_fifos_devices_and_odd_names_in_the_output_dir_are_collected_safely(
    cold: Sandbox, canary: str, tmp_path: Path
) -> None:
    secret = tmp_path / ".env"
    secret.write_text(f"OPENAI_API_KEY={canary}\n")
    limits = kit.LIMITS.replace(max_files=20)
    started = time.monotonic()
    result = await kit.run(cold, kit.program("output_specials", host_secret=str(secret)), limits)
    elapsed = time.monotonic() - started
    made = kit.report(result)
    assert made["fifo"] == made["symlink env.txt"] == made["sparse"] == "OK", f"traps not laid: {made}"
    assert elapsed < 5.0, f"collecting the files took {elapsed:.1f} s"
    kit.assert_no_secret(result, canary)
    by_name = {f.name: f.data for f in result.files}
    assert by_name.get("ok.txt") == b"fine", f"the honest file did not come back: {sorted(by_name)}"
    assert all(data in (b"fine", b"named") for data in by_name.values()), "a link or special file was read"
    names = [*by_name, *result.skipped_files]
    assert not [n for n in names if UNSAFE_NAME.search(n) or n in ("", ".", "..")], names
    assert all(len(n.encode()) <= 255 for n in names)
    await kit.assert_run_left_nothing(cold)


async def test_invalid_utf8_and_nul_bytes_are_decoded_with_replacement(cold: Sandbox) -> None:
    result = await kit.run(cold, kit.program("bad_utf8"))
    assert result.ok, result.to_json()
    assert result.stdout.startswith("before ") and "surrogate after" in result.stdout, result.stdout
    assert "\ufffd" in result.stdout and "\ufffd" in result.stderr
    assert result.stderr.endswith("end\n") and result.result is not None
    # multi-byte characters split across read chunks must survive intact
    text = await kit.run(cold, "print('é' * 40000, end='')")
    assert text.stdout == "é" * 40000, "valid UTF-8 was garbled"
    await kit.assert_run_left_nothing(cold)


# ---------------------------------------------------------------- runs are isolated from each other


async def test_concurrent_runs_cannot_see_each_others_files_or_processes(
    either: Sandbox, tmp_path: Path
) -> None:
    params = {"token": "iso-" + secrets.token_hex(6), "port": _free_port()}
    params["shm_key"] = 0x10000 + secrets.randbelow(1 << 20)
    writer = kit.program("isolation_writer", hold_s=1.2, **params)
    looker = kit.program("isolation_looker", look_s=0.8, **params)
    # The control's writer holds long enough that a slow start on a loaded machine still overlaps.
    slow_writer = kit.program("isolation_writer", hold_s=4.0, **params)
    control = asyncio.ensure_future(kit.run_unconfined(either.cfg, slow_writer, cwd=tmp_path))
    await asyncio.sleep(1.0)
    seen_on_host = await kit.run_unconfined(either.cfg, looker, cwd=tmp_path)
    written = await control
    assert '"tcp": "OK"' in written, f"control: the writer could not plant everything: {written}"
    for place in ("/tmp", "process", "abstract", "tcp", "sysv_shm"):
        assert f'"{place}"' in seen_on_host, f"control: unconfined, the looker finds the {place} plant"

    roomy = kit.LIMITS.replace(timeout_s=20.0, cpu_s=20.0)  # a loaded machine must not time a run out
    planted, looked = await asyncio.gather(
        kit.run(either, writer, roomy), _after(0.3, kit.run(either, looker, roomy))
    )
    plants = kit.report(planted)
    assert all(plants[k] == "OK" for k in ("cwd", "tmp", "abstract", "tcp")), plants
    assert plants["sysv_shm"] >= 0, plants
    found = kit.report(looked)
    assert found["seen"] == {}, f"a run saw another run's state: {found['seen']}"
    assert found["rounds"] >= 2 and found["pid_ns"] != plants["pid_ns"]  # it looked more than once


def _free_port() -> int:
    """Return a loopback port nothing listens on now (a random one can collide with the suite's own)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _after(delay_s: float, awaitable: Awaitable[RunResult]) -> RunResult:
    await asyncio.sleep(delay_s)
    return await awaitable


async def test_warm_pool_never_reuses_a_sandbox(warm: Sandbox) -> None:
    token = "plant-" + secrets.token_hex(6)
    await kit.wait_for_warm(warm)
    planted = await kit.run(warm, kit.program("pool_leftovers", mode="plant", token=token))
    assert [f.name for f in planted.files] == [f"{token}.txt"], "control: the plant run wrote its file"
    await kit.wait_for_warm(warm)
    checked = await kit.run(warm, kit.program("pool_leftovers", mode="check", token=token))
    found = kit.report(checked)["found"]
    leaked = {k: v for k, v in found.items() if v and k not in ("processes", "cwd")}
    assert leaked == {} and found["cwd"] == [], f"the next run saw the previous one: {found}"
    assert len(found["processes"]) <= 3, f"processes visible to a fresh run: {found['processes']}"
    assert kit.report(checked)["pid_ns"] != kit.report(planted)["pid_ns"], "both runs shared a pid namespace"
    assert warm.pool is not None and warm.pool.spawned >= 2


CLOSE_AFTER_RUN = """
import asyncio, dataclasses, time
from sandbox import Sandbox, SandboxConfig

async def main():
    async with Sandbox(dataclasses.replace(SandboxConfig.from_env(), pool_size=1)) as sb:
        while sb.pool.ready < 1:
            await asyncio.sleep(0.01)
        assert (await sb.run("print(1)")).ok
        started = time.monotonic()
    print(f"closed in {time.monotonic() - started:.2f} s", flush=True)

asyncio.run(main())
"""


async def test_closing_the_sandbox_right_after_a_run_is_prompt_and_ends_every_process() -> None:
    """A bot shutting down just after a run must not hang, nor leave warm sandboxes behind."""
    # In a child process: a hung close must not leave this test process with live sandboxes.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLOSE_AFTER_RUN, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 12)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        out, err = b"", b"(killed after 12 s)"
    finally:
        await kit.assert_no_strays(kit.sandbox_uid(SandboxConfig.from_env()), wait_s=2.0)
    assert out.startswith(b"closed in"), f"closing after a run did not finish: {err.decode()[-500:]}"
    assert float(out.split()[2]) < 5.0, out


CRASH_MID_RUN = """
import asyncio, dataclasses
from sandbox import Sandbox, SandboxConfig

CODE = '''
import os, subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
if os.fork() == 0:
    os.setsid()
    time.sleep(60)
print("running", flush=True)
time.sleep(60)
'''

async def main():
    async with Sandbox(dataclasses.replace(SandboxConfig.from_env(), pool_size=2)) as sb:
        while sb.pool.ready < 2:
            await asyncio.sleep(0.01)
        print("ready", flush=True)
        await asyncio.gather(sb.run(CODE), sb.run(CODE), sb.run(CODE))

asyncio.run(main())
"""


async def test_a_bot_killed_mid_run_leaves_no_sandbox_process_behind() -> None:
    """SIGKILL of the bot (crash, OOM kill, hard restart) takes every sandbox, warm or running, with it."""
    uid = kit.sandbox_uid(SandboxConfig.from_env())
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASH_MID_RUN, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line == b"ready\n", line
        await asyncio.sleep(0.5)  # three runs under way, their children started, the pool refilling
        tree = await asyncio.to_thread(lambda: kit.descendants(kit.process_table()))
        assert sum(row[1] in uid for row in tree.values()) > 9, "control: the runs and the pool are up"
    finally:
        proc.kill()
        await proc.wait()
    await kit.assert_no_strays(uid, wait_s=2.0)
