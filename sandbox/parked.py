"""A cold start's bwrap, started ahead of time and parked inside its cgroups before any sandbox exists.

Moving a process into a cgroup waits for an RCU grace period after a quiet moment (~7 ms measured on the
reference machine, cgroup v1, whichever group is first): on a cold start that move was the longest step,
and it came after bwrap had forked, so every cold run also paid a second move at READY. A parked bwrap is
spawned in the background (after a run, never competing with a start) as `bwrap --args FD python ...`:
it blocks reading its options from FD, so no namespace, mount or interpreter exists yet, and it is moved
into a fresh run's cgroups while it waits. A cold run then writes the options for its limits (one write,
atomic below PIPE_BUF) and closes FD: bwrap builds the sandbox exactly as a direct start would, and every
process of it is born inside its groups (no move on the run's path).

Fail-closed: `--hostname` stays on the command line, after the options from FD, and bwrap refuses it
without the `--unshare-uts` that only FD holds; so a bot that dies while a bwrap is parked (FD at EOF, no
options) leaves a bwrap that exits with an error instead of starting the interpreter unconfined.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import time
from dataclasses import dataclass

from sandbox import bootstrap, command, execute, process, runner
from sandbox.capture import Output
from sandbox.locate import Identity
from sandbox.types import RunLimits

SENTINEL = ["--hostname", "sandbox"]  # needs --unshare-uts, which only the options on FD give
MAX_OPTIONS = select.PIPE_BUF  # one atomic write: bwrap never parses half the options
EARLY_PAYLOAD = 60_000  # a run's header and code sent with the options fit an empty 64 KiB pipe


@dataclass
class Parked:
    """A parked bwrap: the slot it becomes, and what its options are built from."""

    slot: runner.Slot
    options_fd: int  # the write end bwrap reads its options from; closed once they are written
    fds: tuple[int, int | None, int | None]  # report, seccomp, code fd numbers, as bwrap holds them
    switch: tuple[int, int] | None  # (uid, gid) the supervisor drops to (root mode)
    caps: tuple[int, int]  # what the cgroups hold now

    def close_options(self) -> None:
        if self.options_fd >= 0:
            os.close(self.options_fd)
            self.options_fd = -1


def parkable(env: runner.Env) -> bool:
    """Tell whether a cold start here is bwrap itself, started as the bot (no setpriv, no weak mode)."""
    if env.layout.bwrap is None:
        return False
    root_switch = env.drop_inside and env.ident.drop and env.layout.seccomp is not None
    return root_switch or not env.ident.drop


def _switch(env: runner.Env, uid: int | None) -> tuple[int, int] | None:
    ident = env.ident if uid is None else Identity(uid, uid, drop=True)
    return (ident.uid, ident.gid) if env.ident.drop else None


def options(env: runner.Env, parked: Parked, limits: RunLimits, preimport: str = "") -> bytes:
    """Return the NUL-separated options for limits (everything between bwrap and the command)."""
    report_fd, seccomp_fd, code_fd = parked.fds
    argv = command.bwrap_argv(env.layout, limits, preimport, report_fd, seccomp_fd, code_fd, parked.switch)
    tail = command.python_args(
        env.layout, str(env.layout.site_dir), preimport, report_fd, code_fd, parked.switch
    )
    opts = argv[1 : len(argv) - len(tail)]
    at = next(i for i in range(len(opts) - 1) if opts[i : i + 2] == SENTINEL)
    del opts[at : at + 2]  # on the command line instead (fail-closed, see the module's text)
    return b"".join(os.fsencode(arg) + b"\0" for arg in opts)


async def park(env: runner.Env, limits: RunLimits, uid: int | None) -> Parked:
    """Start a bwrap that waits for its options, inside a fresh run's cgroups; the caller owns it."""
    layout = env.layout
    assert layout.bwrap is not None and parkable(env)
    seccomp_fd = runner._seccomp_pipe(layout.seccomp) if layout.seccomp else None
    code_fd = bootstrap.code_fd(layout.supervisor_code) if layout.supervisor_code is not None else None
    report_r, report_w = os.pipe()
    (out_r, out_w), (err_r, err_w), (opt_r, opt_w) = os.pipe(), os.pipe(), os.pipe()
    switch = _switch(env, uid)
    tail = command.python_args(layout, str(layout.site_dir), "", report_w, code_fd, switch)
    argv = [str(layout.bwrap), "--args", str(opt_r), *SENTINEL, *tail]
    try:
        passed = tuple(fd for fd in (report_w, seccomp_fd, code_fd, opt_r) if fd is not None)
        proc = process.start(
            argv, stdout=out_w, stderr=err_w, env=command.BWRAP_ENV, cwd="/", pass_fds=passed
        )
    except BaseException:
        for fd in (report_r, out_r, err_r, opt_w):
            os.close(fd)
        raise
    finally:
        for passed_fd in (report_w, out_w, err_w, opt_r, seccomp_fd, code_fd):
            if passed_fd is not None:  # the child has its copies now
                os.close(passed_fd)
    try:
        output = await Output.open(out_r, err_r, limits.max_output_bytes)  # owns out_r, err_r now
    except BaseException:
        runner.kill(proc)
        for fd in (report_r, opt_w):
            os.close(fd)
        raise
    try:
        report = await runner._report_reader(report_r)  # owns report_r now
    except BaseException:
        runner.kill(proc)
        output.close()
        os.close(opt_w)
        raise
    born = time.monotonic()
    slot = runner.Slot(
        proc, report, output, None, None, born, "", limits.output_dir_mb, limits.tmp_mb, uid=uid
    )
    parked = Parked(slot, opt_w, (report_w, seccomp_fd, code_fd), switch, runner.cgroup_caps(limits))
    try:
        if env.use_cgroups:
            await _into_cgroups(env, parked, limits)
    except BaseException:
        await discard(parked)
        raise
    return parked


async def _into_cgroups(env: runner.Env, parked: Parked, limits: RunLimits) -> None:
    slot = parked.slot
    slot.cgroup, inside = await asyncio.to_thread(runner._make_cgroup, env, limits, slot.proc.pid)
    slot.cgroup_caps = runner.cgroup_caps(limits)
    if not inside:  # a parked bwrap has no child: anything else means it is not waiting as it should
        raise OSError("the parked bwrap was not childless inside its cgroups")
    slot.born_inside = True


async def unpark(
    env: runner.Env, parked: Parked, limits: RunLimits, payload: tuple[bytes, ...] = ()
) -> runner.Slot:
    """Give the parked bwrap the options for limits and wait until its supervisor is ready.

    With a payload (what the supervisor's child reads: header and code) it goes into stdin right after the
    options, so the child starts the code without waiting for the host's reply to READY. Everything a
    run's start does first is done before the sandbox exists: the output count starts afresh, and the
    cgroups get the run's limits (its processes are born inside them, so the code never runs under others).
    """
    slot = parked.slot
    try:
        data = options(env, parked, limits)
        if slot.proc.returncode is not None or len(data) > MAX_OPTIONS:
            raise OSError("the parked bwrap cannot be used")
        if payload:
            slot.output.cap.reset(limits.max_output_bytes)
            if slot.cgroup is not None and slot.cgroup_caps != runner.cgroup_caps(limits):
                await asyncio.to_thread(slot.cgroup.set_limits, *runner.cgroup_caps(limits), env.cpu_quota)
                slot.cgroup_caps = runner.cgroup_caps(limits)
        if os.write(parked.options_fd, data) != len(data):
            raise OSError("short write of the options")
    except BaseException:
        parked.close_options()
        runner.kill(slot.proc)
        raise
    parked.close_options()
    slot.born, slot.output_dir_mb, slot.tmp_mb = time.monotonic(), limits.output_dir_mb, limits.tmp_mb
    if payload:  # at most EARLY_PAYLOAD bytes: they fit the empty pipe, the write does not wait
        await execute.send(slot.proc, payload)
    await runner._wait_ready(slot)  # on failure: killed, SandboxUnavailable
    return slot


async def discard(parked: Parked) -> None:
    """Kill and remove a parked bwrap that will not be used (its uid, if any, is the caller's to release)."""
    parked.close_options()
    runner.kill(parked.slot.proc)
    with contextlib.suppress(Exception):
        await runner.destroy(parked.slot)
