"""Per-run cgroup v2 groups in a delegated subtree (systemd Delegate=yes, or a root-made subtree).

A v2 group may hold processes or enable controllers for children, not both ("no internal processes").
So the delegated root keeps no process of its own: when the bot starts inside it (a systemd unit with
Delegate=yes), `prepare` first moves the bot into a leaf `<root>/bot`, then enables memory, pids and cpu
for the run groups `<root>/run-<bot pid>-<run>`. cpu.stat (usage_usec) exists in every v2 group, so CPU
accounting works even where the cpu controller (the CFS quota) is not delegated. Synchronous.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from sandbox.cgroups_v1 import kill_listed, parse_flat_keyed, procs, rmdir, write

WANTED = ("memory", "pids", "cpu")
RUN_PREFIX = "run-"
BOT_LEAF = "bot"
CPU_MAX_PERIOD_US = 100_000


@dataclass(frozen=True)
class V2Root:
    """A delegated v2 subtree the bot may create run groups in, with the controllers it can use."""

    path: Path
    controllers: frozenset[str]


@dataclass(frozen=True)
class V2Group:
    """The v2 group of one run."""

    path: Path
    controllers: frozenset[str]
    version: str = "v2"

    @property
    def dirs(self) -> tuple[Path, ...]:
        return (self.path,)

    @property
    def has_cpu(self) -> bool:
        return True  # cpu.stat's usage_usec is core accounting, present without the cpu controller

    def set_limits(self, memory_bytes: int, max_pids: int, cpu_quota: float) -> None:
        """Write memory.max (and no swap), pids.max and cpu.max for the controllers delegated."""
        if "memory" in self.controllers:
            write(self.path / "memory.max", memory_bytes)
            with contextlib.suppress(OSError):  # absent on a kernel without swap accounting
                write(self.path / "memory.swap.max", 0)
        if "pids" in self.controllers:
            write(self.path / "pids.max", max_pids)
        if "cpu" in self.controllers:
            quota = max(1000, round(cpu_quota * CPU_MAX_PERIOD_US))
            write(self.path / "cpu.max", f"{quota} {CPU_MAX_PERIOD_US}")

    def attach(self, pids: list[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                write(self.path / "cgroup.procs", pid)

    def track(self, pids: list[int]) -> None:
        """Put helper processes (bwrap's) in the group too, so its removal proves the tree is gone."""
        inside = set(procs(self.path))
        self.attach([pid for pid in pids if pid not in inside])

    def missing(self, pid: int) -> bool:
        return pid not in procs(self.path)

    def oom_killed(self) -> bool:
        try:
            return parse_flat_keyed((self.path / "memory.events").read_text()).get("oom_kill", 0) > 0
        except OSError:
            return False

    def cpu_usage_ns(self) -> int | None:
        try:
            usec = parse_flat_keyed((self.path / "cpu.stat").read_text()).get("usage_usec")
        except OSError:
            return None
        return None if usec is None else usec * 1000

    def kill_all(self, attempts: int = 20) -> None:
        """Kill the whole group at once (cgroup.kill, Linux 5.14+), else SIGKILL what it lists."""
        with contextlib.suppress(OSError):
            write(self.path / "cgroup.kill", 1)
        kill_listed(self.path, attempts)

    def remove(self, wait_s: float = 2.0) -> None:
        self.kill_all()
        rmdir(self.path, wait_s)


def mount_point(mountinfo: str | None = None) -> Path | None:
    """Return where the cgroup2 hierarchy is mounted (the first cgroup2 line of mountinfo), or None."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return None
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if sep and right.split()[:1] == ["cgroup2"] and len(left.split()) > 4:
            return Path(left.split()[4])
    return None


def own_path(proc_cgroup: str | None = None) -> str | None:
    """Return this process's v2 cgroup path ("0::/..." line of /proc/self/cgroup), or None."""
    if proc_cgroup is None:
        try:
            proc_cgroup = Path("/proc/self/cgroup").read_text()
        except OSError:
            return None
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:].strip() or "/"
    return None


def find_root(configured: Path | None = None) -> Path | None:
    """Return the delegated subtree: the configured one, or this process's own v2 cgroup."""
    if configured is not None:
        return configured
    mount, own = mount_point(), own_path()
    if mount is None or own is None:
        return None
    return mount / own.lstrip("/")


def probe(path: Path) -> V2Root | None:
    """Return what `path` offers the bot (None unless it is a writable v2 group)."""
    try:
        available = set((path / "cgroup.controllers").read_text().split())
    except OSError:
        return None
    if not (os.access(path, os.W_OK) and os.access(path / "cgroup.subtree_control", os.W_OK)):
        return None
    return V2Root(path, frozenset(c for c in WANTED if c in available))


def prepare(root: V2Root) -> V2Root:
    """Move the bot into a leaf, enable the controllers for run groups; return them."""
    here = procs(root.path)
    # Only the bot's own process is ever moved, and only when it is alone in its group (a dedicated
    # unit): other processes (a login session's) are not ours to move; controllers then stay off.
    if here == [os.getpid()] and root.path != mount_point():  # the hierarchy's root is exempt
        leaf = root.path / BOT_LEAF
        with contextlib.suppress(OSError):
            leaf.mkdir(exist_ok=True)
            write(leaf / "cgroup.procs", os.getpid())
    enabled = set()
    for ctrl in root.controllers:
        with contextlib.suppress(OSError):
            write(root.path / "cgroup.subtree_control", f"+{ctrl}")
            enabled.add(ctrl)
    return V2Root(root.path, frozenset(enabled))


def create(root: V2Root, run_id: str) -> V2Group:
    group = V2Group(root.path / f"{RUN_PREFIX}{os.getpid()}-{run_id}", root.controllers)
    group.path.mkdir()
    return group


def sweep_stale(root: V2Root) -> int:
    """Remove run groups left by bot processes that died; return how many were removed."""
    from sandbox.hostfs import pid_alive

    removed = 0
    for path in root.path.glob(f"{RUN_PREFIX}*-*"):
        owner = path.name[len(RUN_PREFIX) :].split("-", 1)[0]
        if not path.is_dir() or not owner.isdigit() or pid_alive(int(owner)):
            continue
        with contextlib.suppress(OSError):
            V2Group(path, root.controllers).remove(wait_s=0.5)
            removed += 1
    return removed
