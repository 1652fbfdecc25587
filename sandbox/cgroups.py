"""Per-run cgroups, v1 or v2, behind one small interface. Synchronous: callers use a worker thread.

`detect` picks the hierarchy once at start-up: v1 where the memory and pids controllers are mounted and
the bot is root (as on this project's reference machine), else a delegated v2 subtree (systemd
Delegate=yes, or CODEBOT_SANDBOX_CGROUP_ROOT), else none (rlimits, and CPU accounted from /proc).
The processes are moved in by the host once the sandbox reports READY, before any user code runs, so no
code has to run between fork and exec in the bot (no preexec_fn, which is unsafe in a threaded process).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sandbox import cgroups_v1, cgroups_v2
from sandbox.cgroups_v1 import V1Group
from sandbox.cgroups_v2 import V2Group, V2Root

MODES = ("auto", "v1", "v2", "off")
RunCgroup = V1Group | V2Group


@dataclass(frozen=True)
class Support:
    """Which per-run cgroup layers this host gives the bot."""

    version: str  # "v1", "v2", or "" for none
    memory: bool
    pids: bool
    cpu: bool  # CPU accounting per run (the quota too where the cpu controller is there)
    cpu_quota: bool
    detail: str  # what was found, or why nothing: for doctor
    v2_root: V2Root | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.version)

    def layer(self, name: str) -> str | None:
        """Return "cgroup-v1"/"cgroup-v2" if the named layer (memory, pids, cpu) is a cgroup here."""
        return f"cgroup-{self.version}" if self.version and getattr(self, name) else None


NONE = Support("", False, False, False, False, "no cgroups")


def detect(mode: str = "auto", v2_root: Path | None = None, prepare: bool = False, runs: int = 1) -> Support:
    """Find the per-run cgroups this host offers; `prepare` (the bot, not doctor) readies them for
    `runs` concurrent runs (v2: enables the controllers; v1: weights the runs' parent cpu group)."""
    if mode == "off":
        return Support("", False, False, False, False, "turned off (CODEBOT_SANDBOX_CGROUP=off)")
    reasons = []
    if mode in ("auto", "v1"):
        if cgroups_v1.available():
            ctrls = cgroups_v1.controller_dirs()
            cpu = "cpu" in ctrls and "cpuacct" in ctrls
            if prepare and cpu:
                cgroups_v1.weight_parent(runs)
            return Support("v1", True, True, cpu, cpu, "v1: " + ", ".join(sorted(ctrls)))
        reasons.append(_v1_reason())
    if mode in ("auto", "v2") and (found := _v2(v2_root, prepare)) is not None:
        return found
    if mode in ("auto", "v2"):
        where = v2_root or cgroups_v2.find_root()
        reasons.append(f"no writable delegated v2 subtree ({where or 'no cgroup2 mount'})")
    return Support("", False, False, False, False, "; ".join(reasons))


def _v1_reason() -> str:
    if os.geteuid() != 0:
        return "v1 groups need root"
    return "the v1 memory and pids controllers are not both mounted"


def _v2(configured: Path | None, prepare: bool) -> Support | None:
    path = cgroups_v2.find_root(configured)
    root = cgroups_v2.probe(path) if path is not None else None
    if root is None:
        return None
    if prepare:
        root = cgroups_v2.prepare(root)
    ctrls = root.controllers
    detail = f"v2 at {root.path}: controllers {', '.join(sorted(ctrls)) or 'none'} delegated"
    return Support("v2", "memory" in ctrls, "pids" in ctrls, True, "cpu" in ctrls, detail, root)


def create(support: Support, run_id: str) -> RunCgroup:
    """Create one run's groups in the detected hierarchy."""
    if support.version == "v2" and support.v2_root is not None:
        return cgroups_v2.create(support.v2_root, run_id)
    return cgroups_v1.create(run_id)


def sweep_stale(support: Support) -> int:
    """Remove run groups left by bot processes that died; return how many were removed."""
    if support.version == "v2" and support.v2_root is not None:
        return cgroups_v2.sweep_stale(support.v2_root)
    return cgroups_v1.sweep_stale() if support.version == "v1" else 0


def available() -> bool:
    """Tell whether per-run v1 memory and pids cgroups can be made here (kept for callers of v1)."""
    return cgroups_v1.available()


def attach_tree(group: RunCgroup, root_pid: int) -> None:
    """Make sure the sandbox's interpreter (found under its outer process) is in the run's groups, and
    bwrap's processes above it at least in the group that tracks tasks (pids on v1)."""
    chain = chain_pids(root_pid)
    if group.missing(chain[-1]):
        group.attach([chain[-1]])
    group.track(chain[:-1])


def leaf_pid(root_pid: int) -> int:
    """Return the interpreter's host pid: the end of the chain bwrap -> bwrap (pid 1) -> python."""
    return chain_pids(root_pid)[-1]


def chain_pids(root_pid: int) -> list[int]:
    """Return the chain bwrap -> bwrap (pid 1) -> python, outermost first.

    Only the interpreter is moved into every group: bwrap's processes never fork again, and each
    memory cgroup.procs write can cost ms (an RCU grace period), which would show on every cold run.
    """
    chain = [root_pid]
    for _ in range(8):  # a ready sandbox is a chain of 3 processes; bound the walk anyway
        try:
            with open(f"/proc/{chain[-1]}/task/{chain[-1]}/children") as f:
                children = f.read().split()
        except OSError:
            break
        if not children:
            break
        chain.append(int(children[0]))
    return chain
