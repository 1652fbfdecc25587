"""`codebot doctor` (sandbox part): which isolation layers are active here, and how to fix what is not.

`report` is synchronous (it runs its own event loop for the live test); call it from a worker thread
when an event loop is already running.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from dataclasses import dataclass

from sandbox import cgroups, locate, seccomp, sockets
from sandbox.config import SandboxConfig
from sandbox.setup import MARKER
from sandbox.types import SandboxUnavailable

# Runs inside the sandbox: reports who it is, what it can import and whether any network is reachable.
PROBE = """
import json, os, socket
def connect(addr):
    try:
        socket.create_connection(addr, timeout=1).close()
        return "reachable"
    except OSError as exc:
        return type(exc).__name__
mods = {}
for m in ("numpy", "pandas", "matplotlib", "sympy"):
    try:
        __import__(m)
        mods[m] = "ok"
    except Exception as exc:
        mods[m] = type(exc).__name__
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print(json.dumps({"uid": os.getuid(), "net": connect(("1.1.1.1", 53)), "ifaces": os.listdir("/sys/class/net")
  if os.path.isdir("/sys/class/net") else [n for _, n in socket.if_nameindex()], "mods": mods,
  "seccomp": status.get("Seccomp", "?").strip(), "caps": status.get("CapEff", "?").strip()}))
"""


@dataclass(frozen=True)
class DoctorCheck:
    """One line of the doctor's report."""

    name: str
    ok: bool
    detail: str


def report(cfg: SandboxConfig) -> list[DoctorCheck]:
    """Check every isolation layer and try a tiny real run; each failed check says how to fix it."""
    checks = [*_static_checks(cfg)]
    checks += asyncio.run(_live_checks(cfg))
    return checks


def _static_checks(cfg: SandboxConfig) -> list[DoctorCheck]:
    checks: list[DoctorCheck] = []
    try:
        ident = locate.identity(cfg)
    except SandboxUnavailable as exc:
        return [DoctorCheck("user", False, str(exc))]
    if ident.drop:
        checks.append(
            DoctorCheck("user", True, f"bot is root: runs drop to {cfg.sandbox_user} (uid {ident.uid})")
        )
    else:
        checks.append(
            DoctorCheck("user", True, f"bot is uid {ident.uid}: runs use an unprivileged user namespace")
        )
    try:
        bwrap = locate.find_bwrap(cfg, ident)
        checks.append(DoctorCheck("bwrap", True, f"{bwrap} (executable by uid {ident.uid})"))
    except SandboxUnavailable as exc:
        checks.append(DoctorCheck("bwrap", False, str(exc)))
    checks.append(_userns_check())
    try:
        locate.check_env(cfg, ident)
        marker = (cfg.env_dir / MARKER).read_text() if (cfg.env_dir / MARKER).is_file() else "{}"
        pkgs = json.loads(marker).get("packages", {})
        detail = f"{cfg.env_dir}: " + (
            ", ".join(f"{k} {v}" for k, v in pkgs.items()) or "no packages recorded"
        )
        checks.append(DoctorCheck("environment", True, detail))
    except (SandboxUnavailable, ValueError) as exc:
        checks.append(DoctorCheck("environment", False, str(exc)))
    return [*checks, _socket_check(cfg), *_limit_checks()]


def _socket_check(cfg: SandboxConfig) -> DoctorCheck:
    from sandbox.api import bound_trees  # api imports this module's callers; keep the import local
    from sandbox.command import interpreter_binds

    trees = bound_trees(cfg, interpreter_binds(cfg.python))
    found = sockets.scan(trees)
    scanned = f"{found.entries} entries under {', '.join(trees)}"
    if found.sockets:
        names = ", ".join(found.sockets[:10])
        detail = (
            f"unix sockets under bound trees: {names}: every run masks them, but move them out ({scanned})"
        )
        return DoctorCheck("bound sockets", False, detail)
    if not found.complete:
        return DoctorCheck("bound sockets", False, f"scan stopped early ({scanned})")
    return DoctorCheck("bound sockets", True, f"no unix socket ({scanned})")


def _userns_check() -> DoctorCheck:
    try:
        with open("/proc/sys/user/max_user_namespaces") as f:
            count = int(f.read())
    except (OSError, ValueError):
        return DoctorCheck("user namespaces", True, "limit unknown (will be tested by the live run)")
    if count == 0:
        return DoctorCheck("user namespaces", False, "disabled: sysctl -w user.max_user_namespaces=15000")
    return DoctorCheck(
        "user namespaces", True, f"enabled (max {count}); nested namespaces are disabled in runs"
    )


def _limit_checks() -> list[DoctorCheck]:
    root = os.geteuid() == 0
    checks = []
    if cgroups.available():
        checks.append(DoctorCheck("memory+pids cgroups", True, "per-run cgroup v1 (memory.limit, pids.max)"))
    else:
        fix = (
            "run the bot as root on a cgroup v1 host"
            if not root
            else "mount the v1 memory and pids controllers"
        )
        detail = f"not available: memory falls back to RLIMIT_AS, processes to RLIMIT_NPROC (per uid) ({fix})"
        checks.append(DoctorCheck("memory+pids cgroups", False, detail))
    # bwrap mounts both inside the sandbox (no root needed); only weak mode loses them
    detail = "per-run size-limited tmpfs inside the sandbox for the working directory and /tmp"
    checks.append(DoctorCheck("disk per run", True, detail + " (weak mode: a host directory, unbounded)"))
    return checks


async def _live_checks(cfg: SandboxConfig) -> list[DoctorCheck]:
    from sandbox.api import Sandbox

    try:
        async with Sandbox(dataclasses.replace(cfg, pool_size=0)) as sb:
            result = await sb.run(PROBE)
    except SandboxUnavailable as exc:
        return [DoctorCheck("live run", False, str(exc))]
    mode = "full isolation" if result.isolation == "full" else f"WEAK MODE {result.isolation}"
    if not result.ok:
        detail = (result.error or result.stderr or f"exit code {result.exit_code}")[-500:]
        return [DoctorCheck("live run", False, f"{mode}: {detail}")]
    info = json.loads(result.stdout.strip().splitlines()[-1])
    bad = [f"{m}: {s}" for m, s in info["mods"].items() if s != "ok"]
    net_ok = info["net"] != "reachable" and set(info["ifaces"]) <= {"lo"}
    return [
        DoctorCheck(
            "live run",
            result.isolation == "full",
            f"{mode}, uid {info['uid']} inside, {result.duration_ms:.0f} ms",
        ),
        DoctorCheck("network", net_ok, f"interfaces {info['ifaces']}, 1.1.1.1:53 -> {info['net']}"),
        _seccomp_check(info["seccomp"], info["caps"], result.isolation),
        DoctorCheck(
            "packages",
            not bad,
            "numpy, pandas, matplotlib, sympy import"
            if not bad
            else f"failed: {', '.join(bad)}: run `codebot setup`",
        ),
    ]


def _seccomp_check(mode: str, caps: str, isolation: str) -> DoctorCheck:
    if isolation != "full":
        return DoctorCheck("seccomp", False, "not applied in weak mode")
    if mode != "2":
        why = "no syscall table for this architecture" if not seccomp.supported() else f"mode {mode}"
        return DoctorCheck("seccomp", False, f"no filter ({why}); namespaces still apply")
    blocked = ", ".join(sorted(seccomp.BLOCKED_X86_64)[:6])
    detail = f"filter on: {len(seccomp.BLOCKED_X86_64)} calls fail with EPERM ({blocked}, ...); CapEff {caps}"
    return DoctorCheck("seccomp", True, detail)
