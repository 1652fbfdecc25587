"""Which isolation layers a run really gets, in one stable shape for results, `--json` and doctor.

The shape (every key always present):
    net: bool          own network namespace (loopback only)
    seccomp: bool      the syscall filter (socket families, mount API, ptrace, ...)
    memory: str        "cgroup-v1" | "cgroup-v2" | "rlimit" (RLIMIT_AS per process)
    pids: str          "cgroup-v1" | "cgroup-v2" | "rlimit" (RLIMIT_NPROC, counted per uid)
    cpu: str           "cgroup-v1" | "cgroup-v2" (exact, all processes) | "proc" (polled from /proc,
                       best effort); RLIMIT_CPU per process always applies as well
    cpu_quota: bool    a CFS quota keeps one run to CODEBOT_SANDBOX_CPU_QUOTA CPUs
    disk: str          "tmpfs" (the working directory's total is capped) | "per-file" (RLIMIT_FSIZE only)
    uid: str           "per-slot" (a uid of its own per concurrent run) | "shared" (one sandbox user for
                       all runs) | "own" (the bot's own uid, in a user namespace: the bot is not root)
`isolation` is "full" only when every layer is the strong one; "partial" when namespaces and seccomp hold
but a limit is weaker (doctor names it, with its cost and fix); or the weak mode's name.
"""

from __future__ import annotations

from collections.abc import Mapping

from sandbox.cgroups import Support

Layers = Mapping[str, str | bool]
STRONG: dict[str, tuple[str | bool, ...]] = {
    "net": (True,),
    "seccomp": (True,),
    "memory": ("cgroup-v1", "cgroup-v2"),
    "pids": ("cgroup-v1", "cgroup-v2"),
    "cpu": ("cgroup-v1", "cgroup-v2"),
    "cpu_quota": (True,),
    "disk": ("tmpfs",),
    "uid": ("per-slot",),
}


def describe(
    namespaces: bool, seccomp: bool, cgroup: Support, disk_tmpfs: bool, uid: str
) -> dict[str, str | bool]:
    """Return the layers of a run on this host."""
    return {
        "net": namespaces,
        "seccomp": namespaces and seccomp,
        "memory": cgroup.layer("memory") or "rlimit",
        "pids": cgroup.layer("pids") or "rlimit",
        "cpu": cgroup.layer("cpu") or "proc",
        "cpu_quota": cgroup.cpu_quota,
        "disk": "tmpfs" if disk_tmpfs else "per-file",
        "uid": uid,
    }


def weaker(layers: Layers) -> list[str]:
    """Return the names of the layers that are not the strong kind."""
    return [name for name, strong in STRONG.items() if layers.get(name) not in strong]


def isolation(layers: Layers, weak_mode: str) -> str:
    """Return "full", "partial" or the weak mode's name for these layers."""
    if weak_mode:
        return weak_mode
    return "partial" if weaker(layers) else "full"
