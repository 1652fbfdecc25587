"""CPU time per run, all processes together, read by the host while the run goes; kill at the cap.

RLIMIT_CPU is per process: code that hands its work to fresh children (each under the limit) is not
stopped by it. The host therefore polls the run's total CPU time:
- from the run's cgroup (cpuacct.usage on v1, cpu.stat usage_usec on v2): exact, every process counted;
- without a cgroup, from /proc: over the live processes of the sandbox's tree, utime+stime (the process
  itself) plus cutime+cstime (its reaped children; orphans are reaped by the sandbox's pid 1, inside the
  tree). Each process is also remembered with the most it was seen using, so a worker that was seen once
  still counts after it is gone, even if its parent never waits for it. Best effort: children that live
  less than one poll and are reaped without a wait() (SIGCHLD ignored) are not counted, nor (in weak
  mode, without a pid namespace) orphans, which the host's init adopts; RLIMIT_CPU still caps each
  process, and the wall timeout caps the run.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Protocol

POLL_S = 0.05  # a kill lands at most about this late; one poll costs ~50 us (cgroup) to ~0.1 ms (/proc)
MAX_TREE = 4096  # bound the /proc walk (the pids cap is far lower)
_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


class Meter(Protocol):
    def used_ns(self) -> int | None: ...


class CgroupLike(Protocol):
    def cpu_usage_ns(self) -> int | None: ...


@dataclass(frozen=True)
class CgroupMeter:
    """The run's cgroup counter."""

    group: CgroupLike

    def used_ns(self) -> int | None:
        return self.group.cpu_usage_ns()


@dataclass
class ProcMeter:
    """The sandbox's process tree as /proc shows it (no cgroup available)."""

    root_pid: int
    _seen: dict[tuple[int, int], int] = field(default_factory=dict)  # (pid, start) -> most own CPU seen

    def used_ns(self) -> int | None:
        live = 0
        for pid in tree(self.root_pid):
            times = stat_times(pid)
            if times is None:
                continue
            start, own, children = times
            key = (pid, start)
            self._seen[key] = max(self._seen.get(key, 0), own)
            live += own + children
        return max(live, sum(self._seen.values())) * _TICK_NS


def tree(root_pid: int) -> list[int]:
    """Return root_pid and all its descendants (through every thread's children list), bounded."""
    found: list[int] = []
    todo = [root_pid]
    while todo and len(found) < MAX_TREE:
        pid = todo.pop()
        found.append(pid)
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
            except (OSError, ValueError):
                continue
    return found


def stat_times(pid: int) -> tuple[int, int, int] | None:
    """Return (start time, own utime+stime, reaped children's cutime+cstime) in ticks, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read(4096)
    except OSError:
        return None
    fields = text.rpartition(b")")[2].split()  # the name in (...) may hold spaces or ')'
    try:  # fields[0] is the state: utime is field 14 of stat(5), here index 11
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        return int(fields[19]), utime + stime, cutime + cstime
    except (IndexError, ValueError):
        return None


async def _read(meter: Meter) -> int | None:
    try:
        return await asyncio.to_thread(meter.used_ns)
    except Exception:  # a counter that cannot be read must never look like a run over its cap
        return None


async def watch(meter: Meter, cpu_s: float, poll_s: float = POLL_S) -> float:
    """Return (the CPU seconds used) once the run has used cpu_s of CPU time since this call."""
    base = await _read(meter)
    cap_ns = int(cpu_s * 1e9)
    poll_s = min(poll_s, max(0.01, cpu_s / 20))
    while True:
        await asyncio.sleep(poll_s)  # polling: the kernel offers no event for "CPU time reached"
        used = await _read(meter)
        if used is not None and base is not None and used - base >= cap_ns:
            return (used - base) / 1e9
        if base is None:
            base = used
