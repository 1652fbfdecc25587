"""Hand code to a ready sandbox, supervise it under its limits, and turn the outcome into a RunResult."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from typing import Any

from sandbox import cpuwatch, hostfs, runner
from sandbox.capture import Capture, pump
from sandbox.types import KilledReason, OutputFile, RunLimits, RunResult

STDERR_GRACE_S = 0.2


async def execute(env: runner.Env, slot: runner.Slot, code: str, limits: RunLimits) -> RunResult:
    """Run code once in slot (which is always destroyed afterwards) and return the outcome."""
    nonce = runner.new_nonce()
    cap = runner.new_capture(limits, nonce)
    payload = runner.header(env, limits, nonce) + code.encode("utf-8", "surrogatepass")
    if slot.cgroup is not None and slot.cgroup_caps != runner.cgroup_caps(limits):
        await asyncio.to_thread(slot.cgroup.set_limits, *runner.cgroup_caps(limits), env.cpu_quota)
    started = time.monotonic()
    cpu = asyncio.ensure_future(cpuwatch.watch(_meter(slot), limits.cpu_s))  # all processes together
    try:
        stop = await _supervise(slot.proc, payload, cap, limits.timeout_s, cpu)
    finally:
        cpu.cancel()
    duration_ms = (time.monotonic() - started) * 1000
    if not cap.finished.is_set():  # no trailer: the exit status is all there is; wait for it
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await slot.proc.wait()
    oom, (files, skipped) = await asyncio.to_thread(_inspect, slot, limits)
    return _result(env, slot.proc.returncode, cap, stop, oom, duration_ms, files, skipped)


def _meter(slot: runner.Slot) -> cpuwatch.Meter:
    if slot.cgroup is not None and slot.cgroup.has_cpu:
        return cpuwatch.CgroupMeter(slot.cgroup)
    return cpuwatch.ProcMeter(slot.proc.pid)


def _inspect(
    slot: runner.Slot, limits: RunLimits
) -> tuple[bool, tuple[tuple[OutputFile, ...], tuple[str, ...]]]:
    oom = slot.cgroup.oom_killed() if slot.cgroup is not None else False
    return oom, hostfs.collect_files(slot.run_dir.out, limits)


async def _supervise(
    proc: asyncio.subprocess.Process,
    payload: bytes,
    cap: Capture,
    timeout_s: float,
    cpu: asyncio.Future[float],
) -> KilledReason | None:
    """Feed the code and read until the trailer (or exit); return why the host stopped the run, if it did."""
    assert proc.stdout is not None and proc.stderr is not None
    out: asyncio.Future[Any] = asyncio.ensure_future(pump(proc.stdout, cap.feed_stdout))
    err = asyncio.ensure_future(pump(proc.stderr, cap.feed_stderr))
    overflow = asyncio.ensure_future(cap.overflow.wait())
    finished = asyncio.ensure_future(cap.finished.wait())
    try:
        async with asyncio.timeout(timeout_s):
            await _send(proc, payload)
            await asyncio.wait({out, overflow, finished, cpu}, return_when=asyncio.FIRST_COMPLETED)
            if cap.overflow.is_set():
                return "output"
            if cpu.done() and not cap.finished.is_set():
                return "cpu"
            if cap.finished.is_set() and not cap.err_finished.is_set():
                # stderr's end mark was written before the trailer; it may just not be read yet
                await asyncio.wait(
                    {err, asyncio.ensure_future(cap.err_finished.wait())}, timeout=STDERR_GRACE_S
                )
        return None
    except TimeoutError:
        return "timeout"
    finally:
        runner.kill(proc)
        for waiter in (overflow, finished):
            waiter.cancel()
        if not cap.finished.is_set():
            # Read on to EOF (the kill brings it at once), keeping the feeds bounded.
            await asyncio.wait({out, err}, timeout=2.0)
        # Once the trailer is in, the interpreter's teardown is not worth waiting for: destroy() drains.
        for task in (out, err):
            task.cancel()


async def _send(proc: asyncio.subprocess.Process, payload: bytes) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(payload)
        await proc.stdin.drain()
        proc.stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the interpreter died; its exit status tells the rest


def _result(
    env: runner.Env,
    returncode: int | None,
    cap: Capture,
    stop: KilledReason | None,
    oom: bool,
    duration_ms: float,
    files: tuple[OutputFile, ...],
    skipped: tuple[str, ...],
) -> RunResult:
    meta: dict[str, Any] = cap.meta() or {}
    if stop is None and meta.get("exit") is not None:
        exit_code = int(meta["exit"])  # the run finished at its trailer; the kill after it is ours
    elif returncode is None or returncode < 0:
        exit_code = 128 + (signal.SIGKILL if returncode is None else -returncode)
    else:
        exit_code = returncode
    stdout, stderr, truncated = cap.texts()
    reason = stop
    if reason is None and (oom or meta.get("exc_type") == "MemoryError"):
        reason = "memory"
    elif reason is None and exit_code == 128 + signal.SIGXCPU:
        reason = "cpu"
    return RunResult(
        stdout=stdout,
        stderr=stderr,
        result=_str_or_none(meta.get("result")),
        error=_str_or_none(meta.get("error")),
        exit_code=exit_code,
        timed_out=stop == "timeout",
        truncated=truncated or stop == "output",
        killed_reason=reason,
        duration_ms=duration_ms,
        files=files,
        skipped_files=skipped,
        isolation=env.isolation,
    )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
