"""Containment suite: real abuse programs (tests/sandbox/abuse/, one per threat) in the real sandbox.

This module holds the kit the other test_containment_*.py modules share (running a program, reading its
report, finding processes that outlived a run, sandboxes with and without a warm pool), and the tests
on privileges: syscalls, the host uid, writes outside the working directory. Every test asserts what an
operator cares about; where a program is harmless on the host, the test first runs it unconfined to
prove it would succeed there: a test that cannot fail proves nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import pwd
import secrets
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sandbox import RunLimits, RunResult, Sandbox, SandboxConfig

ABUSE = Path(__file__).parent / "abuse"
MiB = 1024 * 1024
# Small limits keep the suite fast; a 1 MiB output cap leaves room for the programs' reports.
LIMITS = RunLimits(timeout_s=3.0, cpu_s=3.0, max_output_bytes=MiB)
HANG_GUARD_S = 20.0  # a run that has not returned this long after its timeout is a hang
CLOSE_GUARD_S = 10.0
SECRET_MARKER = "CODEBOT-SECRET-MARKER"  # not secret: lets a program spot planted files without the canary


def program(name: str, **params: Any) -> str:
    """Return the source of abuse program `name`, with its PARAMS bound in front."""
    return f"PARAMS = {params!r}\n" + (ABUSE / f"{name}.py").read_text()


def reports(result: RunResult) -> list[dict[str, Any]]:
    """Return every `REPORT {json}` line the program printed, in order."""
    lines = (ln[len("REPORT ") :] for ln in result.stdout.splitlines() if ln.startswith("REPORT "))
    return [json.loads(ln) for ln in lines]


def report(result: RunResult) -> dict[str, Any]:
    """Return the program's last report; fail with the run's output if there is none."""
    found = reports(result)
    assert found, f"no report: {result.to_json()}"
    return found[-1]


def everything(result: RunResult) -> str:
    """Return all text and file bytes a run handed back, to search for leaked secrets."""
    parts = [result.stdout, result.stderr, result.result or "", result.error or "", *result.skipped_files]
    for f in result.files:
        parts += [f.name, f.data.decode("latin-1")]
    return "\n".join(parts)


def assert_no_secret(result: RunResult, *secrets_: str) -> None:
    """Fail if any secret shows up anywhere in what the run returned."""
    blob = everything(result)
    for value in secrets_:
        assert value not in blob, f"secret leaked into the run's output: {result.to_json()}"


def sandbox_uid(cfg: SandboxConfig) -> frozenset[int]:
    """Return the host uids sandboxed code may run as: the per-slot range and the shared sandbox user
    when root (the range falls back to the user when taken), the bot's own uid when not root."""
    if os.geteuid() != 0:
        return frozenset({os.geteuid()})
    span = cfg.uid_range
    per_slot = set(range(span[0], span[1] + 1)) if span else set()
    return frozenset({pwd.getpwnam(cfg.sandbox_user).pw_uid, *per_slot})


def process_table() -> dict[int, tuple[int, int, str, str]]:
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(ln.split(":", 1) for ln in text.splitlines() if ":" in ln)
        uid = int(fields["Uid"].split()[0])
        table[int(entry)] = (int(fields["PPid"]), uid, fields["State"].strip(), fields["Name"].strip())
    return table


def _started_ticks(pid: int | str) -> int:
    """Return when a process started, in clock ticks since boot (0 if it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


def _pid_ns(pid: int | str) -> str:
    """Return a process's pid namespace ("" if it is gone or unreadable)."""
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return ""


def stray_processes(uid: frozenset[int]) -> list[str]:
    """List live processes of `uid` that belong to this test process or were orphaned (daemons).

    Processes of `uid` under another process (another test session's sandboxes) are not ours, and
    neither are orphans older than this test session.
    """
    table, mine, strays = process_table(), os.getpid(), []
    session_start = _started_ticks("self")
    # When the bot is an ordinary user, the sandbox uid is the test's own: then only processes in another
    # pid namespace are sandbox processes (other tests' helpers of the same uid are not).
    own_ns = _pid_ns("self") if os.getuid() in uid else None
    for pid, (ppid, owner, state, name) in table.items():
        if owner not in uid or state.startswith("Z"):
            continue
        if own_ns is not None and _pid_ns(pid) == own_ns:
            continue
        parent = ppid
        for _ in range(256):  # bounded walk up the tree
            orphan = parent <= 1 or parent not in table
            if parent == mine or (orphan and _started_ticks(pid) >= session_start):
                strays.append(f"pid {pid} {name} ({state}), parent {ppid}")
                break
            if orphan:
                break  # an orphan from before this session: not ours
            if table[parent][1] not in uid:
                break  # under someone else's process
            parent = table[parent][0]
    return strays


async def assert_no_strays(uid: frozenset[int], wait_s: float = 1.0) -> None:
    """Fail if a process of the sandbox uid is still alive after `wait_s` (time for reaping)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while strays := await asyncio.to_thread(stray_processes, uid):
        if loop.time() > deadline:
            pytest.fail(f"processes of the sandbox uid {uid} outlived the run: {strays}")
        await asyncio.sleep(0.05)


async def assert_run_left_nothing(sb: Sandbox) -> None:
    """After a run: no process of the sandbox uid may remain (idle warm slots are checked at close)."""
    if sb.pool is None:
        await assert_no_strays(sandbox_uid(sb.cfg))


async def run(sb: Sandbox, code: str, limits: RunLimits = LIMITS) -> RunResult:
    """Run code, failing clearly (instead of hanging the suite) if the sandbox never returns."""
    try:
        return await asyncio.wait_for(sb.run(code, limits), limits.timeout_s + HANG_GUARD_S)
    except TimeoutError:
        pytest.fail(f"the sandbox did not return within {limits.timeout_s + HANG_GUARD_S:.0f} s")


async def run_unconfined(
    cfg: SandboxConfig, code: str, pass_fds: tuple[int, ...] = (), cwd: Path | None = None
) -> str:
    """Run code with the sandbox's interpreter but no sandbox (the control); return its stdout."""
    proc = await asyncio.create_subprocess_exec(
        str(cfg.python), "-I", "-S", "-c", code, stdout=asyncio.subprocess.PIPE, pass_fds=pass_fds, cwd=cwd
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    return out.decode("utf-8", "replace")


@contextlib.asynccontextmanager
async def open_sandbox(**changes: Any) -> AsyncIterator[Sandbox]:
    """Start a Sandbox from the environment's config with some fields changed; check for strays after.

    The pool is let settle before closing: closing while a refill is pending hangs (a known bug, caught
    by its own test in test_containment_lifecycle.py); here it would only cascade into every later test.
    """
    cfg = dataclasses.replace(SandboxConfig.from_env(), **changes)
    sb = Sandbox(cfg)
    await sb.__aenter__()
    try:
        yield sb
    finally:
        if sb.pool is not None:
            await wait_for_warm(sb)
        closing = asyncio.ensure_future(sb.__aexit__(None, None, None))
        done, _ = await asyncio.wait({closing}, timeout=CLOSE_GUARD_S)
        if not done:
            closing.cancel()
            await asyncio.to_thread(_kill_own_sandbox_processes, sandbox_uid(cfg))
            pytest.fail(f"closing the Sandbox took more than {CLOSE_GUARD_S:.0f} s")
    await assert_no_strays(sandbox_uid(cfg))


def _kill_own_sandbox_processes(uid: frozenset[int]) -> None:
    """SIGKILL this test process's own sandbox processes, so one hung close does not spoil later tests."""
    for pid, (_, owner, _, _) in descendants(process_table()).items():
        if owner in uid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def canary(monkeypatch: pytest.MonkeyPatch) -> str:
    """Put a fresh canary secret where a bot keeps its secrets: its environment."""
    value = "sk-canary-" + secrets.token_hex(16)
    for name in ("CODEBOT_TEST_CANARY", "OPENAI_API_KEY", "SLACK_BOT_TOKEN", "DISCORD_TOKEN"):
        monkeypatch.setenv(name, value)
    return value


@pytest.fixture
async def cold(canary: str) -> AsyncIterator[Sandbox]:
    """A sandbox without a warm pool: every run starts fresh, so no process may remain after a run."""
    async with open_sandbox(pool_size=0) as sb:
        yield sb


@pytest.fixture
async def warm(canary: str) -> AsyncIterator[Sandbox]:
    """A sandbox with the production warm pool (pre-imported modules), one slot."""
    async with open_sandbox(pool_size=1) as sb:
        yield sb


@pytest.fixture(params=["cold", "warm"])
async def either(request: pytest.FixtureRequest, canary: str) -> AsyncIterator[Sandbox]:
    """The same test through a cold start and through the warm pool."""
    async with open_sandbox(pool_size=0 if request.param == "cold" else 1) as sb:
        if request.param == "warm":
            await wait_for_warm(sb)
        yield sb


async def wait_for_warm(sb: Sandbox, timeout_s: float = 30.0) -> None:
    """Wait until the pool has a ready slot, so the next run really takes the warm path."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while sb.pool is None or sb.pool.ready < 1:
        assert loop.time() < deadline, "the warm pool never became ready"
        await asyncio.sleep(0.02)


# ---------------------------------------------------------------- network


@contextlib.asynccontextmanager
async def listeners() -> AsyncIterator[dict[str, Any]]:
    """Serve TCP on 127.0.0.1 and ::1, UDP on 127.0.0.1 and an abstract unix socket; record every contact."""
    contacts: list[str] = []

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        contacts.append("stream connection")
        writer.write(b"hello\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    class Udp(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            contacts.append(f"udp datagram {data!r}")

    loop = asyncio.get_running_loop()
    tcp4 = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    tcp6 = await asyncio.start_server(on_conn, "::1", 0)
    name = "codebot-test-" + secrets.token_hex(6)
    unix = await asyncio.start_unix_server(on_conn, "\0" + name)
    udp, _ = await loop.create_datagram_endpoint(Udp, local_addr=("127.0.0.1", 0))
    try:
        yield {
            "contacts": contacts,
            "tcp_port": tcp4.sockets[0].getsockname()[1],
            "tcp6_port": tcp6.sockets[0].getsockname()[1],
            "udp_port": udp.get_extra_info("sockname")[1],
            "abstract_name": name,
        }
    finally:
        udp.close()
        for server in (tcp4, tcp6, unix):
            server.close()
            await server.wait_closed()


# ---------------------------------------------------------------- privileges and the host's files


async def test_ctypes_syscalls_cannot_widen_the_sandbox(cold: Sandbox) -> None:
    result = await run(cold, program("ctypes_syscalls", bot_pid=os.getpid()))
    found = report(result)
    must_fail = [
        "unshare_NEWUSER",
        "unshare_NEWNS",
        "unshare_NEWNET",
        "unshare_NEWPID",
        "mount_tmpfs",
        "mount_proc",
        "ptrace_bot",
        "setuid0",
        "setgid0",
        "setgroups0",
        "chroot",
        "sethostname",
        "setns_mnt",
        "setns_net",
        "setns_user",
        "setns_pid",
        "mknod_char",
        "raw_socket",
        "raise_nproc_hard",
    ]
    succeeded = [k for k in must_fail if not found[k].startswith("ERR")]
    assert succeeded == [], f"privileged calls succeeded: { {k: found[k] for k in succeeded} }"
    status = found["status"]
    assert status["CapEff"] == status["CapBnd"] == "0000000000000000", status
    assert status["NoNewPrivs"] == "1", status
    assert result.duration_ms < (LIMITS.timeout_s + 1) * 1000, "ptrace of pid 1 hung the run"
    await assert_run_left_nothing(cold)


def descendants(table: dict[int, tuple[int, int, str, str]]) -> dict[int, tuple[int, int, str, str]]:
    mine, found = os.getpid(), {}
    for pid, row in table.items():
        parent = row[0]
        for _ in range(64):  # bounded walk up the tree
            if parent == mine:
                found[pid] = row
                break
            if parent <= 1 or parent not in table:
                break
            parent = table[parent][0]
    return found


async def test_code_runs_as_an_unprivileged_host_uid(cold: Sandbox) -> None:
    """Root mapped to another uid inside is still root outside: the host must see an ordinary uid."""
    task = asyncio.ensure_future(run(cold, "import time; time.sleep(1.5)"))
    try:
        tree: dict[int, tuple[int, int, str, str]] = {}
        pythons: dict[int, tuple[int, int, str, str]] = {}
        for _ in range(100):  # bounded: the run lasts 1.5 s
            await asyncio.sleep(0.02)
            tree = await asyncio.to_thread(lambda: descendants(process_table()))
            pythons = {pid: row for pid, row in tree.items() if row[3].startswith("python")}
            if len(pythons) >= 2:  # the supervisor and the code's own process: the code is running
                break
        assert len(pythons) >= 2, f"no sandboxed code process seen: {tree}"
        uids = {uid for _, uid, _, _ in pythons.values()}
        assert len(uids) == 1 and uids <= sandbox_uid(cold.cfg), f"sandbox processes run as host uids {uids}"
        # The outer bwrap, in the host's pid namespace where the code cannot reach it, is root only when the
        # supervisor drops to the uid itself (root mode with the seccomp filter; sandbox/command.py).
        outer = {uid for _, uid, _, name in tree.values() if not name.startswith("python")}
        assert outer <= {*uids, 0}, f"the outer bwrap runs as {outer}"
    finally:
        result = await task
    assert result.ok, result.to_json()


async def test_writes_outside_the_output_directory_fail(cold: Sandbox, tmp_path: Path) -> None:
    host_target = tmp_path / "planted-by-sandbox"
    result = await run(cold, program("write_outside", extra_new=[str(host_target)]))
    found = report(result)
    written = {
        p: v
        for group in ("create", "open_existing", "mkdir")
        for p, v in found[group].items()
        if not v.startswith("ERR")
    }
    assert written == {}, f"the sandbox wrote outside its working directory: {written}"
    assert found["allowed"] == {"cwd": "OK created", "tmp": "OK created"}, "the writable places must work"
    assert not host_target.exists()
    await assert_run_left_nothing(cold)
