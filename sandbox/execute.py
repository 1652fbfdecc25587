"""Hand code to a ready sandbox, supervise it under its limits, and turn the outcome into a RunResult.

The host's accounting depends on nothing the code can write: every byte of stdout and stderr counts
against the output cap (no in-band marks), the exit status comes from a wait (the supervisor's waitpid of
the child, reported on an fd the code never holds; else the host's own wait of the sandbox), and the
report is parsed as untrusted bytes.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

from sandbox import cpuwatch, process, report, runner, workspace
from sandbox.capture import Capture
from sandbox.types import KilledReason, RunLimits, RunResult

DRAIN_S = 5.0  # after a kill (or an end without a report), how long the sandbox may take to exit
SEND_SLICE = 1 << 20  # the child widens its stdin pipe to this for a large workspace
MALFORMED = "the sandbox's report was malformed and was ignored (result, error and files are missing)\n"


async def execute(
    env: runner.Env,
    slot: runner.Slot,
    code: str,
    limits: RunLimits,
    prep: workspace.Prepared | None = None,
    sent: bool = False,
) -> RunResult:
    """Run code once in slot (which is always destroyed afterwards) and return the outcome.

    `sent`: the code is in the slot's stdin already (a parked cold start, sandbox/parked.py, which also
    reset the output count and set the cgroup limits before the sandbox existed).
    """
    cap = slot.output.cap
    payload: tuple[bytes, ...] = ()
    if not sent:
        cap.reset(limits.max_output_bytes)
        payload = plain_payload(env, code, limits) if prep is None else _payload(env, code, limits, prep)
    max_state = prep.max_state_bytes if prep is not None and prep.keep_state else 0
    if not sent and slot.cgroup is not None and slot.cgroup_caps != runner.cgroup_caps(limits):
        await asyncio.to_thread(slot.cgroup.set_limits, *runner.cgroup_caps(limits), env.cpu_quota)
    started = time.monotonic()
    # all of the run's processes together, polled by the host (a parked start's code may have begun a few
    # ms before this base is read; RLIMIT_CPU caps each of its processes from their start)
    cpu: asyncio.Future[Any] = asyncio.ensure_future(cpuwatch.watch(_meter(slot), limits.cpu_s))
    try:
        stop, parsed = await _supervise(slot, payload, limits, cpu, max_state)
    finally:
        cpu.cancel()
    duration_ms = (time.monotonic() - started) * 1000
    # One small cgroup file read, done inline: a worker-thread hop would cost the reply ~0.3 ms.
    oom = slot.cgroup.oom_killed() if slot.cgroup is not None else False
    result = _result(env, slot.proc.returncode, cap, stop, oom, duration_ms, parsed)
    return result if prep is None else workspace.finish(result, parsed, prep)


def plain_payload(env: runner.Env, code: str, limits: RunLimits) -> tuple[bytes, ...]:
    """Return what the supervisor's child reads for a run without a workspace: header and code, one piece."""
    return (runner.header(env, limits) + code.encode("utf-8", "surrogatepass"),)


def _payload(env: runner.Env, code: str, limits: RunLimits, prep: workspace.Prepared) -> tuple[bytes, ...]:
    head = runner.header(env, limits, prep.fields)
    return (head, *prep.pieces, code.encode("utf-8", "surrogatepass"))


def _meter(slot: runner.Slot) -> cpuwatch.Meter:
    if slot.cgroup is not None and slot.cgroup.has_cpu:
        return cpuwatch.CgroupMeter(slot.cgroup)
    return cpuwatch.ProcMeter(slot.proc.pid)


async def _supervise(
    slot: runner.Slot,
    payload: tuple[bytes, ...],
    limits: RunLimits,
    cpu: asyncio.Future[Any],
    max_state: int = 0,
) -> tuple[KilledReason | None, report.Report]:
    """Feed the code, wait for the supervisor's report (or the sandbox's end); say why the host stopped it."""
    proc, cap = slot.proc, slot.output.cap
    reading = asyncio.ensure_future(report.read(slot.report.reader, limits, max_state))
    overflow = asyncio.ensure_future(cap.overflow.wait())
    exited = asyncio.ensure_future(proc.wait())
    stop: KilledReason | None = None
    try:
        async with asyncio.timeout(limits.timeout_s):
            if payload:
                await send(proc, payload)
            await asyncio.wait({reading, overflow, exited, cpu}, return_when=asyncio.FIRST_COMPLETED)
            if cpu.done() and not reading.done():
                stop = "cpu"  # the run's processes together used up their CPU time: stop them all now
                runner.kill(proc)
            elif not reading.done() and not cap.overflow.is_set():
                # the sandbox exited without finishing its report: read what is left of it (bounded: a
                # supervisor that switched uid outlives a bwrap killed by someone else until destroy)
                await asyncio.wait({reading, overflow}, timeout=DRAIN_S, return_when=asyncio.FIRST_COMPLETED)
            # At the report's end every process of the code is dead: what is in the pipes is all there is.
            await slot.output.drain()
        if cap.overflow.is_set():
            stop = "output"
    except TimeoutError:
        stop = "output" if cap.overflow.is_set() else "timeout"
    finally:
        overflow.cancel()
        parsed = reading.result() if reading.done() and not reading.cancelled() else None
        if parsed is None or parsed.status is None:  # no final word from the supervisor
            if stop is not None or parsed is None:
                runner.kill(proc)
            reading.cancel()
            await asyncio.wait({exited}, timeout=DRAIN_S)  # for the host's own exit status
        exited.cancel()
    return stop, parsed or report.Report()


async def send(proc: process.Process, payload: tuple[bytes, ...]) -> None:
    """Write the payload to the sandbox's stdin and close it (a dead sandbox is not an error here)."""
    assert proc.stdin is not None
    try:
        for piece in payload:  # in slices: a large workspace is never copied whole on the event loop
            for start in range(0, len(piece), SEND_SLICE):
                proc.stdin.write(piece[start : start + SEND_SLICE])  # a small piece is not copied
                await proc.stdin.drain()
        proc.stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the sandbox died; its exit status tells the rest


def _exit_code(parsed: report.Report, returncode: int | None) -> int:
    if parsed.status is not None:  # the supervisor's waitpid of the child
        return parsed.status
    if returncode is None or returncode < 0:  # killed by the host (or not reaped within DRAIN_S)
        return 128 + (signal.SIGKILL if returncode is None else -returncode)
    return returncode


def _result(
    env: runner.Env,
    returncode: int | None,
    cap: Capture,
    stop: KilledReason | None,
    oom: bool,
    duration_ms: float,
    parsed: report.Report,
) -> RunResult:
    exit_code = _exit_code(parsed, returncode)
    stdout, stderr, truncated = cap.texts()
    reason = stop
    if reason is None and (oom or parsed.exc_type == "MemoryError"):
        reason = "memory"
    elif reason is None and exit_code == 128 + signal.SIGXCPU:
        reason = "cpu"
    error = parsed.error
    if stop is None and parsed.state == "malformed":
        error = MALFORMED
    return RunResult(
        stdout=stdout,
        stderr=stderr,
        result=parsed.result,
        error=error,
        exit_code=exit_code,
        timed_out=stop == "timeout",
        truncated=truncated or stop == "output",
        killed_reason=reason,
        duration_ms=duration_ms,
        files=parsed.files,
        skipped_files=parsed.skipped,
        isolation=env.isolation,
    )
