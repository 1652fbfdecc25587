"""Doctor's static checks of the limit layers: uids, cgroups (v1/v2), memory, pids, CPU, disk.

Each check that finds a weaker layer stays ok (the bot can still run safely: namespaces and seccomp
hold) but its detail starts with WEAKER and says what that costs and how to get the strong one.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from sandbox import cgroups, cpuwatch, lean, uidpool
from sandbox.config import SandboxConfig


@dataclass(frozen=True)
class DoctorCheck:
    """One line of the doctor's report (ok False = the bot cannot run safely; see WEAKER above)."""

    name: str
    ok: bool
    detail: str


DELEGATE_FIX = (
    "run the bot as root on a cgroup v1 host, or give it a delegated cgroup v2 subtree "
    "(deploy/codebot.service has Delegate=yes; or set CODEBOT_SANDBOX_CGROUP_ROOT)"
)


def layer_checks(cfg: SandboxConfig) -> list[DoctorCheck]:
    """Return the uid, cgroup and per-limit checks for this host and configuration."""
    support = cgroups.detect(cfg.cgroup, cfg.cgroup_root, prepare=False)
    return [
        _uid_check(cfg),
        DoctorCheck(
            "cgroups",
            True,
            support.detail if support.enabled else f"WEAKER: no per-run cgroups: {support.detail}",
        ),
        _memory_check(cfg, support),
        _pids_check(cfg, support),
        _cpu_check(cfg, support),
        _disk_check(cfg),
    ]


def _uid_check(cfg: SandboxConfig) -> DoctorCheck:
    if os.geteuid() != 0:
        return DoctorCheck(
            "uids",
            True,
            "WEAKER: runs use the bot's own uid (in a user namespace): they share its per-user quotas "
            "(processes, inotify, pipe buffers) with each other and the bot; run the bot as root with "
            "CODEBOT_SANDBOX_UIDS for a uid per run",
        )
    span = cfg.uid_range
    if span is None:
        return DoctorCheck(
            "uids",
            True,
            f"WEAKER: CODEBOT_SANDBOX_UIDS=off: every run is {cfg.sandbox_user}, so one run can starve "
            "another (inotify instances, pipe buffers) and so can anything else running as that user; "
            "set CODEBOT_SANDBOX_UIDS to an unused range, e.g. 62000-62031",
        )
    taken = uidpool.conflicts(*span, uidpool.LOCK_DIR if uidpool.LOCK_DIR.is_dir() else None)
    free = span[1] - span[0] + 1 - len(taken)
    need = cfg.pool_size + lean.slots(cfg.pool_size, cfg.preimport) + cfg.max_concurrent
    named = "; ".join(f"uid {u}: {why}" for u, why in sorted(taken.items())[:5])
    if free < need:
        detail = f"WEAKER: {cfg.sandbox_uids} has {free} unused uids, {need} needed: runs fall back to "
        detail += f"sharing {cfg.sandbox_user} ({named}); pick a range nothing uses"
        return DoctorCheck("uids", True, detail)
    detail = f"one uid per slot from {cfg.sandbox_uids} ({free} unused, {need} slots)"
    return DoctorCheck("uids", True, detail + (f"; skipped: {named}" if taken else ""))


def _memory_check(cfg: SandboxConfig, support: cgroups.Support) -> DoctorCheck:
    mb = cfg.default_limits.memory_mb
    if support.memory:
        return DoctorCheck("memory", True, f"cgroup-{support.version}: {mb} MB per run, all processes")
    cost = f"RLIMIT_AS {mb} MB per process, so a run of N processes may hold N x {mb} MB"
    return DoctorCheck("memory", True, f"WEAKER: {cost}; {DELEGATE_FIX}")


def _pids_check(cfg: SandboxConfig, support: cgroups.Support) -> DoctorCheck:
    n = cfg.default_limits.max_processes
    if support.pids:
        return DoctorCheck("pids", True, f"cgroup-{support.version}: {n} tasks per run")
    cost = "RLIMIT_NPROC, counted per uid (shared with the other runs of that uid)"
    return DoctorCheck("pids", True, f"WEAKER: {cost}; {DELEGATE_FIX}")


def _cpu_check(cfg: SandboxConfig, support: cgroups.Support) -> DoctorCheck:
    cap = cfg.default_limits.cpu_s
    if support.cpu:
        quota = (
            f"a CFS quota of {cfg.cpu_quota:g} CPU"
            if support.cpu_quota
            else "no CFS quota (cpu not delegated)"
        )
        detail = f"cgroup-{support.version}: {cap:g} CPU s per run, all processes, polled every "
        detail += f"{cpuwatch.POLL_S * 1000:.0f} ms; {quota}"
        return DoctorCheck("cpu", True, detail if support.cpu_quota else f"WEAKER: {detail}")
    meter, polls = cpuwatch.ProcMeter(os.getpid()), []
    for _ in range(3):  # the best of three: one poll's own cost, not a busy moment's
        started = time.perf_counter()
        meter.used_ns()
        polls.append(time.perf_counter() - started)
    poll_us = min(polls) * 1e6 / max(1, len(cpuwatch.tree(os.getpid())))
    detail = f"WEAKER: {cap:g} CPU s per run counted from /proc every {cpuwatch.POLL_S * 1000:.0f} ms "
    detail += f"(~{poll_us:.0f} us per process per poll here, in a worker thread): best effort, "
    detail += "short-lived children reaped without wait() between polls escape it; no CFS quota; "
    detail += DELEGATE_FIX
    return DoctorCheck("cpu", True, detail)


def _disk_check(cfg: SandboxConfig) -> DoctorCheck:
    mb = cfg.default_limits.output_dir_mb
    # bwrap mounts both inside the sandbox, so the cap needs no root; only weak mode (no bwrap) loses it
    detail = f"per-run tmpfs inside the sandbox: {mb} MB working directory, private /tmp"
    if cfg.weak_mode:
        detail += f"; WEAKER in weak mode {cfg.weak_mode}: a host directory, RLIMIT_FSIZE caps each file"
    return DoctorCheck("disk", True, detail)
