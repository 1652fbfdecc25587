"""Per-run cgroup v1 groups: memory, pids, and (where mounted) cpu + cpuacct. Synchronous, root only.

Each controller is its own hierarchy on v1 (`/sys/fs/cgroup/<controller>/codebot/<bot pid>-<run>`); where
cpu and cpuacct are co-mounted (`cpu,cpuacct`), one directory serves both.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
GROUP = "codebot"
CFS_PERIOD_US = 100_000


@dataclass(frozen=True)
class V1Group:
    """The v1 groups of one run (cpu/cpuacct None where those controllers are not mounted)."""

    memory: Path
    pids: Path
    cpu: Path | None = None
    cpuacct: Path | None = None
    version: str = "v1"

    @property
    def dirs(self) -> tuple[Path, ...]:
        """Every distinct directory of this run (cpu and cpuacct may be one)."""
        found = [self.memory, self.pids, self.cpu, self.cpuacct]
        return tuple(dict.fromkeys(p for p in found if p is not None))

    @property
    def has_cpu(self) -> bool:
        return self.cpuacct is not None

    def set_limits(self, memory_bytes: int, max_pids: int, cpu_quota: float) -> None:
        """Write the run's memory (swap included where accounted), process and CPU-bandwidth caps."""
        memsw = self.memory / "memory.memsw.limit_in_bytes"  # only present with swap accounting
        try:
            write(self.memory / "memory.limit_in_bytes", memory_bytes)
        except OSError as exc:
            # EINVAL: above the current memory+swap limit (a warm slot given a bigger run), which must
            # never be below the memory limit: raise that one first
            if exc.errno != errno.EINVAL or not memsw.exists():
                raise
            write(memsw, memory_bytes)
            write(self.memory / "memory.limit_in_bytes", memory_bytes)
        with contextlib.suppress(OSError):
            write(memsw, memory_bytes)
        write(self.pids / "pids.max", max_pids)
        if self.cpu is not None:
            write(self.cpu / "cpu.cfs_period_us", CFS_PERIOD_US)
            write(self.cpu / "cpu.cfs_quota_us", max(1000, round(cpu_quota * CFS_PERIOD_US)))

    def attach(self, pids: list[int]) -> None:
        """Move the given processes into every group of the run."""
        for pid in pids:
            for group in self.dirs:
                with contextlib.suppress(ProcessLookupError):
                    write(group / "cgroup.procs", pid)

    def track(self, pids: list[int]) -> None:
        """Put helper processes (bwrap's) in the pids group only: cheap, and the group then holds the
        whole tree, so its removal proves every process of the run has ended."""
        inside = set(procs(self.pids))
        for pid in pids:
            if pid not in inside:
                with contextlib.suppress(ProcessLookupError):
                    write(self.pids / "cgroup.procs", pid)

    def missing(self, pid: int) -> bool:
        """Tell whether pid is outside one of the run's groups."""
        return not all(pid in procs(group) for group in self.dirs)

    def oom_killed(self) -> bool:
        """Tell whether the kernel OOM-killed a process of this run."""
        try:
            text = (self.memory / "memory.oom_control").read_text()
        except OSError:
            return False
        return parse_flat_keyed(text).get("oom_kill", 0) > 0

    def cpu_usage_ns(self) -> int | None:
        """Return the CPU time all the run's processes used so far (None without cpuacct)."""
        if self.cpuacct is None:
            return None
        try:
            return int((self.cpuacct / "cpuacct.usage").read_text())
        except (OSError, ValueError):
            return None

    def kill_all(self, attempts: int = 20) -> None:
        """SIGKILL every process left in the run's pids group."""
        kill_listed(self.pids, attempts)

    def remove(self, wait_s: float = 2.0) -> None:
        """Kill what is left, then delete every group (the kernel needs a moment after the kill)."""
        self.kill_all()
        for group in self.dirs:
            rmdir(group, wait_s)


def controller_dirs() -> dict[str, Path]:
    """Return the mounted v1 controllers this module uses, by name."""
    found = {}
    for name in ("memory", "pids", "cpu", "cpuacct"):
        path = ROOT / name
        if (path / "cgroup.procs").exists() and os.access(path, os.W_OK):
            found[name] = path.resolve()
    return found


def weight_parent(runs: int) -> None:
    """Give the runs' parent cpu group the weight of `runs` ordinary tasks.

    Each run is its own cpu group, and groups share their parent's weight: left at the default 1024, all
    concurrent runs together would weigh one task against the rest of a busy host (measured: half the
    throughput of the same burst with no cpu group). The CFS quota still caps each run.
    """
    ctrls = controller_dirs()
    if "cpu" not in ctrls:
        return
    parent = ctrls["cpu"] / GROUP
    with contextlib.suppress(OSError):
        parent.mkdir(exist_ok=True)
        write(parent / "cpu.shares", 1024 * max(1, runs))


def available() -> bool:
    """Tell whether per-run v1 memory and pids groups can be made here."""
    ctrls = controller_dirs()
    return os.geteuid() == 0 and "memory" in ctrls and "pids" in ctrls


def create(run_id: str) -> V1Group:
    """Create the run's groups under <controller>/codebot/<bot pid>-<run_id>."""
    ctrls = controller_dirs()
    name = f"{os.getpid()}-{run_id}"
    has_cpu = "cpu" in ctrls and "cpuacct" in ctrls

    def under(ctrl: str) -> Path:
        return ctrls[ctrl] / GROUP / name

    group = V1Group(
        under("memory"),
        under("pids"),
        under("cpu") if has_cpu else None,
        under("cpuacct") if has_cpu else None,
    )
    try:
        for path in group.dirs:
            path.parent.mkdir(exist_ok=True)
            path.mkdir()
    except OSError:
        group.remove(wait_s=0.1)
        raise
    return group


def sweep_stale() -> int:
    """Remove run groups left by bot processes that died; return how many were removed.

    Every controller is searched: a bot killed half-way through a removal leaves some groups only.
    """
    from sandbox.hostfs import pid_alive

    ctrls = controller_dirs()
    names = {p.name for c in ctrls.values() for p in (c / GROUP).glob("*-*") if p.is_dir()}
    removed = 0
    for name in sorted(names):
        owner = name.split("-", 1)[0]
        if not owner.isdigit() or pid_alive(int(owner)):
            continue
        path = {c: ctrls.get(c, ROOT / c) / GROUP / name for c in ("memory", "pids", "cpu", "cpuacct")}
        cpu, acct = (path[c] if c in ctrls else None for c in ("cpu", "cpuacct"))
        with contextlib.suppress(OSError):
            V1Group(path["memory"], path["pids"], cpu, acct).remove(wait_s=0.5)
            removed += 1
    return removed


def parse_flat_keyed(text: str) -> dict[str, int]:
    """Parse a `key value` per line cgroup file (memory.oom_control, cpu.stat, memory.events)."""
    fields = {}
    for line in text.splitlines()[:64]:  # bounded: these files hold a handful of lines
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            fields[parts[0]] = int(parts[1])
    return fields


def kill_listed(group: Path, attempts: int) -> None:
    """SIGKILL the processes a group lists until it lists none (or the attempts run out)."""
    for _ in range(attempts):
        pids = procs(group)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.002)


def procs(group: Path) -> list[int]:
    try:
        return [int(p) for p in (group / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def rmdir(group: Path, wait_s: float) -> None:
    """Remove an emptied group, retrying while the kernel finishes with its killed tasks."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.002)


def write(path: Path, value: int | str) -> None:
    with open(path, "w") as f:
        f.write(str(value))
