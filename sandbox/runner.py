"""Spawn one single-use sandbox, run code in it once, and destroy it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox import bootstrap, cgroups, command, hostfs, process
from sandbox.capture import Output
from sandbox.locate import Identity
from sandbox.types import MiB, RunLimits, SandboxUnavailable

READY = b"READY\n"
SPAWN_TIMEOUT_S = 60.0  # importing matplotlib on a loaded 2-core box can take seconds
STDERR_HINT_BYTES = 4000
SANDBOX_TASKS = 3  # outer bwrap, its pid 1, the interpreter: they count toward pids.max and NPROC


@dataclass(frozen=True)
class Env:
    """What every spawn needs: the resolved layout, the host identity, and which layers are available."""

    layout: command.Layout
    ident: Identity
    use_cgroups: bool
    isolation: str  # "full" or the weak mode's name
    nproc_base: int  # tasks of the sandbox uid outside this run (RLIMIT_NPROC is per uid)
    setpriv: Path | None = None  # util-linux setpriv, used to drop to the sandbox uid when root
    cgroup: cgroups.Support = cgroups.NONE  # which per-run cgroup layers exist (use_cgroups: any)
    cpu_quota: float = 1.0  # CPUs one run may use at once (CFS quota) where the cpu controller exists
    layers: Mapping[str, str | bool] = field(default_factory=dict)  # what every run gets (layers.py)
    uids: tuple[int, ...] = ()  # the per-slot uid range (root mode), empty = every run uses ident
    drop_inside: bool = True  # root with a filter: the supervisor drops uid (False: setpriv, user ns)


@dataclass(frozen=True)
class ReportPipe:
    """The host's read end of the report fd, as a stream (closing it closes the fd)."""

    reader: asyncio.StreamReader
    transport: asyncio.ReadTransport

    def close(self) -> None:
        self.transport.close()


@dataclass
class Slot:
    """A started sandbox waiting for code; used once, then destroyed."""

    proc: process.Process
    report: ReportPipe  # the supervisor's own channel: READY, then the report
    output: Output  # the code's stdout and stderr, counted from the start of the run
    run_dir: hostfs.RunDir | None  # a host working directory, weak mode only (else a tmpfs inside)
    cgroup: cgroups.RunCgroup | None
    born: float
    preimport: str
    output_dir_mb: int
    tmp_mb: int
    cgroup_caps: tuple[int, int] | None = None  # (memory bytes, pids) already written to the cgroups
    uid: int | None = None  # the slot's own host uid (uidpool), None = env.ident's
    born_inside: bool = False  # every process of the sandbox was created inside its cgroups


Background = Callable[[Coroutine[Any, Any, None]], object]  # runs a clean-up that nobody awaits, tracked


async def spawn(
    env: Env,
    preimport: str,
    limits: RunLimits,
    background: Background,
    early_attach: bool = False,
    uid: int | None = None,
) -> Slot:
    """Start a sandbox and wait until its supervisor is ready; SandboxUnavailable if it cannot start.

    If the caller is cancelled, whatever was already created is handed to `background` for destruction.
    `early_attach` (cold starts) moves bwrap into the cgroups while the interpreter starts, off the
    critical path; warm slots attach at READY so their pre-imports are not charged to the run.
    """
    # Creating the directory, cgroups and process must not be cut short by a cancel: a half-made sandbox
    # would be leaked. So it runs as its own task; a cancelled caller leaves its clean-up behind.
    start = asyncio.ensure_future(_start(env, preimport, limits, uid, early_attach))
    try:
        slot = await asyncio.shield(start)
    except asyncio.CancelledError:
        background(_destroy_when_started(start))
        raise
    try:
        await _wait_ready(slot)
        if slot.cgroup is not None and not slot.born_inside:
            # Before any user code runs, the interpreter must be inside (a no-op when it was born there).
            await asyncio.to_thread(cgroups.attach_tree, slot.cgroup, slot.proc.pid)
        return slot
    except BaseException:
        kill(slot.proc)
        background(destroy(slot))
        raise


async def _destroy_when_started(start: asyncio.Future[Slot]) -> None:
    try:
        slot = await start
    except BaseException:  # _start has cleaned up after itself
        return
    kill(slot.proc)
    await destroy(slot)


async def _start(env: Env, preimport: str, limits: RunLimits, uid: int | None, early_attach: bool) -> Slot:
    ident = env.ident if uid is None else Identity(uid, uid, drop=True)  # no group entry: gid = uid
    # Only weak mode needs something on the host before the exec (its working directory). The cgroups are
    # made while the sandbox starts (bwrap takes ~10 ms to reach READY; they take under 1 ms), not before it.
    needs_dir = env.layout.bwrap is None
    run_dir = await asyncio.to_thread(_prepare, env, ident) if needs_dir else None
    try:
        proc, report, output = await _exec(env, ident, run_dir, limits, preimport)
    except BaseException:
        await asyncio.to_thread(_teardown, run_dir, None)
        raise
    born = time.monotonic()
    slot = Slot(
        proc, report, output, run_dir, None, born, preimport, limits.output_dir_mb, limits.tmp_mb, uid=uid
    )
    if env.use_cgroups:
        try:
            # A cgroup.procs write can wait for an RCU grace period: overlap it with start-up. When bwrap
            # has not forked yet, its whole tree is born inside and the move at READY is skipped.
            pid = proc.pid if early_attach else None
            slot.cgroup, slot.born_inside = await asyncio.to_thread(_make_cgroup, env, limits, pid)
        except BaseException:
            await destroy(slot)
            raise
        slot.cgroup_caps = cgroup_caps(limits)
    return slot


def cgroup_caps(limits: RunLimits) -> tuple[int, int]:
    """Return the (memory bytes, pids) a run's cgroups enforce."""
    return limits.memory_mb * MiB, limits.max_processes


def _prepare(env: Env, ident: Identity) -> hostfs.RunDir:
    """Make weak mode's host working directory."""
    run_dir = hostfs.make_run_dir(ident)
    try:
        if env.layout.fontlist is not None:
            # weak mode has no bind mounts: give matplotlib a copy of the prebuilt font cache
            hostfs.copy_owned(env.layout.fontlist, run_dir.mpl, ident)
    except BaseException:
        hostfs.remove_run_dir(run_dir)
        raise
    return run_dir


def _make_cgroup(env: Env, limits: RunLimits, pid: int | None) -> tuple[cgroups.RunCgroup, bool]:
    """Create a run's cgroups with its limits and move pid in (when given); return the groups and whether
    pid's whole tree is sure to be born inside (it had no child yet once it was in every group)."""
    group = cgroups.create(env.cgroup, uuid.uuid4().hex)
    try:
        inside = False
        if pid is not None:  # first: the sooner bwrap is in, the likelier its children are born inside
            group.attach([pid])
            # fork and cgroup migration exclude each other in the kernel: a child that does not exist
            # after the last move is created inside every group
            inside = _childless(pid)
        # set now, off the reply path, and before any code arrives; a run with other limits rewrites them
        group.set_limits(*cgroup_caps(limits), env.cpu_quota)
    except BaseException:
        group.remove()
        raise
    return group, inside


def _childless(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return not f.read().strip()
    except OSError:  # gone, or no children file (kernel without it): not sure
        return False


async def _exec(
    env: Env, ident: Identity, run_dir: hostfs.RunDir | None, limits: RunLimits, preimport: str
) -> tuple[process.Process, ReportPipe, Output]:
    layout = env.layout
    seccomp_fd = _seccomp_pipe(layout.seccomp) if layout.bwrap is not None and layout.seccomp else None
    code_fd = bootstrap.code_fd(layout.supervisor_code) if layout.supervisor_code is not None else None
    report_r, report_w = os.pipe()  # only bwrap and the supervisor hold the write end
    (out_r, out_w), (err_r, err_w) = os.pipe(), os.pipe()
    try:
        argv, proc_env, cwd, user = _command(
            env, ident, run_dir, limits, preimport, report_w, seccomp_fd, code_fd
        )
        passed = tuple(fd for fd in (report_w, seccomp_fd, code_fd) if fd is not None)
        proc = process.start(
            argv, stdout=out_w, stderr=err_w, env=proc_env, cwd=cwd, pass_fds=passed, user=user
        )
    except BaseException:
        for fd in (report_r, out_r, err_r):
            os.close(fd)
        raise
    finally:
        for passed_fd in (report_w, out_w, err_w, seccomp_fd, code_fd):
            if passed_fd is not None:  # the child has its copies now
                os.close(passed_fd)
    try:
        output = await Output.open(out_r, err_r, limits.max_output_bytes)
    except BaseException:
        os.close(report_r)
        kill(proc)
        raise
    try:
        return proc, await _report_reader(report_r), output
    except BaseException:
        output.close()
        kill(proc)
        raise


def _command(
    env: Env,
    ident: Identity,
    run_dir: hostfs.RunDir | None,
    limits: RunLimits,
    preimport: str,
    report_w: int,
    seccomp_fd: int | None,
    code_fd: int | None,
) -> tuple[list[str], Mapping[str, str], str | Path, tuple[int, int] | None]:
    """Return the argv, environment, working directory and (uid, gid) to start, for the host's identity."""
    layout, user = env.layout, None
    cwd: str | Path
    if env.drop_inside and layout.bwrap is not None and ident.drop and seccomp_fd is not None:
        # bwrap runs as root and the supervisor switches to the uid itself: no setpriv exec (1-2 ms), and
        # the bot still spawns with vfork; the filter stands in for the user namespace's --disable-userns.
        switch = (ident.uid, ident.gid)
        argv = command.bwrap_argv(layout, limits, preimport, report_w, seccomp_fd, code_fd, switch)
        return argv, command.BWRAP_ENV, "/", None
    if layout.bwrap is not None:
        argv = command.bwrap_argv(layout, limits, preimport, report_w, seccomp_fd, code_fd)
        proc_env, cwd = command.BWRAP_ENV, "/"
    else:
        assert run_dir is not None
        argv = command.weak_argv(layout, preimport, report_w, code_fd)
        proc_env, cwd = command.weak_env(run_dir), run_dir.out
    if ident.drop and env.setpriv is not None:
        # setpriv switches uid; the bot itself then spawns with vfork (Popen's user= forces a full fork,
        # which costs ~12 ms for a 200 MB bot).
        ids = [f"--reuid={ident.uid}", f"--regid={ident.gid}", "--clear-groups"]
        argv = [str(env.setpriv), *ids, *argv]
    elif ident.drop:  # done in C between fork and exec: no Python runs in the child
        user = (ident.uid, ident.gid)
    return argv, proc_env, cwd, user


async def _report_reader(fd: int) -> ReportPipe:
    """Wrap the report pipe's read end in a stream (it takes ownership of fd)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**20)
    pipe = os.fdopen(fd, "rb", buffering=0)
    try:
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    except BaseException:
        pipe.close()
        raise
    return ReportPipe(reader, transport)


def _seccomp_pipe(program: bytes) -> int:
    """Return the read end of a pipe holding the filter (bwrap reads it once, so one per spawn)."""
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, program)  # a few hundred bytes: fits the pipe buffer, never blocks
    finally:
        os.close(write_fd)
    return read_fd


async def _wait_ready(slot: Slot) -> None:
    try:
        async with asyncio.timeout(SPAWN_TIMEOUT_S):
            if await slot.report.reader.readexactly(len(READY)) != READY:
                raise asyncio.IncompleteReadError(b"", len(READY))
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
        kill(slot.proc)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):  # bwrap's or python's complaint, up to its exit
                await slot.proc.wait()
                await slot.output.drain()
        err = bytes(slot.output.cap.stderr[:STDERR_HINT_BYTES])
        raise SandboxUnavailable(explain_start_failure(err.decode("utf-8", "replace"))) from None


def explain_start_failure(stderr: str) -> str:
    """Turn bwrap's or python's start-up error into a message that says how to fix it."""
    text = stderr.strip() or "the sandbox exited before it was ready (no error output)"
    low = text.lower()
    if "namespace" in low or "uid map" in low or "operation not permitted" in low:
        hint = "user namespaces look disabled: enable them (sysctl user.max_user_namespaces=15000, "
        hint += "kernel.unprivileged_userns_clone=1) or set CODEBOT_SANDBOX_WEAK_MODE"
    elif "permission denied" in low or "no such file" in low or "can't find source path" in low:
        hint = "the sandbox user cannot reach the interpreter or its packages: run `codebot setup`"
    else:
        hint = "run `codebot doctor` for details"
    return f"sandbox failed to start: {text[:1000]} ({hint})"


def kill(proc: process.Process) -> None:
    """SIGKILL the sandbox's process group; the kernel takes down the rest of the tree."""
    # The outer bwrap dies; --die-with-parent then kills the sandbox's pid 1, and with it the whole pid
    # namespace, double-forked daemons included. The process group too: it takes whatever else the outer
    # process started in its session (weak mode has no pid namespace to do it). A pid 1 that switched uid
    # (root mode) is out of bwrap's reach: it ends when destroy() closes the report pipe (supervisor.py).
    if proc.returncode is not None:
        return
    for send in (os.killpg, os.kill):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            send(proc.pid, signal.SIGKILL)


def _teardown(run_dir: hostfs.RunDir | None, group: cgroups.RunCgroup | None) -> None:
    try:
        if group is not None:
            group.remove()
    finally:
        if run_dir is not None:
            hostfs.remove_run_dir(run_dir)


async def destroy(slot: Slot) -> None:
    """Kill the sandbox's whole tree and remove its directory and cgroups."""
    kill(slot.proc)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5.0):
            await slot.proc.wait()
    slot.proc.stdin.close()  # a slot destroyed unused still held it
    slot.report.close()  # a supervisor that outlived bwrap (root mode) sees this and ends the sandbox
    slot.output.close()
    if slot.run_dir is not None or slot.cgroup is not None:
        await asyncio.to_thread(_teardown, slot.run_dir, slot.cgroup)


def header(env: Env, limits: RunLimits, workspace: tuple[int, ...] = ()) -> bytes:
    """Return the line the supervisor reads before the code: the child's rlimits and the file caps.

    A run with a workspace appends its fields (sandbox/workspace.py): the child then reads the files and
    the state from stdin before the code.
    """
    fields = (
        round(limits.cpu_s * 1000),
        limits.max_open_files,
        limits.output_dir_mb * MiB,
        0 if env.cgroup.memory else limits.memory_mb * MiB,  # 0 = the memory cgroup caps it
        0 if env.cgroup.pids else env.nproc_base + limits.max_processes,
        limits.max_files,
        limits.max_file_bytes,
        limits.max_files_total_bytes,
        *workspace,
    )
    return " ".join(map(str, fields)).encode() + b"\n"
