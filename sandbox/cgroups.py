"""Per-run memory and pids cgroups (cgroup v1, root only). Synchronous: callers use a worker thread.

The processes are moved in by the host once the sandbox reports READY, before any user code runs, so no
code has to run between fork and exec in the bot (no preexec_fn, which is unsafe in a threaded process).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

V1_ROOT = Path("/sys/fs/cgroup")
GROUP = "codebot"


@dataclass(frozen=True)
class RunCgroup:
    """The memory and pids cgroups of one run."""

    memory: Path
    pids: Path

    def set_limits(self, memory_bytes: int, max_pids: int) -> None:
        """Write the run's memory (swap included where accounted) and process caps."""
        _write(self.memory / "memory.limit_in_bytes", memory_bytes)
        with contextlib.suppress(OSError):  # only present with swap accounting
            _write(self.memory / "memory.memsw.limit_in_bytes", memory_bytes)
        _write(self.pids / "pids.max", max_pids)

    def attach(self, pids: list[int]) -> None:
        """Move the given processes into both cgroups."""
        for pid in pids:
            for group in (self.memory, self.pids):
                with contextlib.suppress(ProcessLookupError):
                    _write(group / "cgroup.procs", pid)

    def attach_tree(self, root_pid: int) -> None:
        """Make sure the sandbox's interpreter (found under its outer process) is in both cgroups."""
        leaf = leaf_pid(root_pid)
        if not all(leaf in _procs(group) for group in (self.memory, self.pids)):
            self.attach([leaf])

    def oom_killed(self) -> bool:
        """Tell whether the kernel OOM-killed a process of this run."""
        try:
            text = (self.memory / "memory.oom_control").read_text()
        except OSError:
            return False
        fields = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
        return int(fields.get("oom_kill", "0")) > 0

    def kill_all(self, attempts: int = 20) -> None:
        """SIGKILL every process left in the run's pids cgroup."""
        for _ in range(attempts):
            pids = _procs(self.pids)
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.002)

    def remove(self, wait_s: float = 2.0) -> None:
        """Kill what is left, then delete both cgroups (the kernel needs a moment after the kill)."""
        self.kill_all()
        deadline = time.monotonic() + wait_s
        for group in (self.memory, self.pids):
            while True:
                try:
                    group.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.002)


def available(root: Path = V1_ROOT) -> bool:
    """Tell whether per-run v1 memory and pids cgroups can be made here."""
    if os.geteuid() != 0:
        return False
    return all(
        (root / c / "cgroup.procs").exists() and os.access(root / c, os.W_OK) for c in ("memory", "pids")
    )


def create(run_id: str, root: Path = V1_ROOT) -> RunCgroup:
    """Create the run's cgroups under <controller>/codebot/<bot pid>-<run_id>."""
    name = f"{os.getpid()}-{run_id}"
    group = RunCgroup(root / "memory" / GROUP / name, root / "pids" / GROUP / name)
    try:
        for path in (group.memory, group.pids):
            path.parent.mkdir(exist_ok=True)
            path.mkdir()
    except OSError:
        group.remove(wait_s=0.1)
        raise
    return group


def sweep_stale(root: Path = V1_ROOT) -> int:
    """Remove run cgroups left by bot processes that died; return how many were removed."""
    from sandbox.hostfs import pid_alive

    removed = 0
    for mem in (root / "memory" / GROUP).glob("*-*"):
        owner = mem.name.split("-", 1)[0]
        if not mem.is_dir() or not owner.isdigit() or pid_alive(int(owner)):
            continue
        with contextlib.suppress(OSError):
            RunCgroup(mem, root / "pids" / GROUP / mem.name).remove(wait_s=0.5)
            removed += 1
    return removed


def leaf_pid(root_pid: int) -> int:
    """Return the interpreter's host pid: the end of the chain bwrap -> bwrap (pid 1) -> python.

    Only the interpreter is moved: bwrap's processes never fork again, and each cgroup.procs write can
    cost a few ms (an RCU grace period), which would show on every cold run.
    """
    pid = root_pid
    for _ in range(8):  # a ready sandbox is a chain of 3 processes; bound the walk anyway
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                children = f.read().split()
        except OSError:
            break
        if not children:
            break
        pid = int(children[0])
    return pid


def _procs(group: Path) -> list[int]:
    try:
        return [int(p) for p in (group / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def _write(path: Path, value: int) -> None:
    with open(path, "w") as f:
        f.write(str(value))
