"""`codebot doctor` (sandbox part): which isolation layers are active here, and how to fix what is not.

`report` is synchronous (it runs its own event loop for the live test); call it from a worker thread
when an event loop is already running.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os

from sandbox import layers, locate, seccomp, sockets
from sandbox.config import SandboxConfig
from sandbox.doctor_layers import DoctorCheck, layer_checks
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
    if ident.drop and cfg.uid_range is not None:
        checks.append(DoctorCheck("user", True, "bot is root: each run drops to a uid of its own (see uids)"))
    elif ident.drop:
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
    return [*checks, _socket_check(cfg), *layer_checks(cfg)]


def _socket_check(cfg: SandboxConfig) -> DoctorCheck:
    from sandbox.api import bound_trees  # api imports this module's callers; keep the import local
    from sandbox.command import interpreter_binds

    trees = bound_trees(cfg, interpreter_binds(cfg.python))
    found = sockets.scan(trees)
    scanned = f"{found.entries} entries under {', '.join(trees)}"
    if found.sockets:
        names = ", ".join(found.sockets[:10])
        detail = f"WARNING: unix sockets under bound trees: {names}: every run masks them, but move them out"
        return DoctorCheck("bound sockets", True, f"{detail} ({scanned})")
    if not found.complete:
        return DoctorCheck("bound sockets", True, f"WARNING: scan stopped early ({scanned})")
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


async def _live_checks(cfg: SandboxConfig) -> list[DoctorCheck]:
    from sandbox.api import Sandbox

    try:
        async with Sandbox(dataclasses.replace(cfg, pool_size=0)) as sb:
            result = await sb.run(PROBE)
    except SandboxUnavailable as exc:
        return [DoctorCheck("live run", False, str(exc))]
    mode = _mode(result.isolation, result.layers)
    if not result.ok:
        detail = (result.error or result.stderr or f"exit code {result.exit_code}")[-500:]
        return [DoctorCheck("live run", False, f"{mode}: {detail}")]
    info = json.loads(result.stdout.strip().splitlines()[-1])
    bad = [f"{m}: {s}" for m, s in info["mods"].items() if s != "ok"]
    net_ok = info["net"] != "reachable" and set(info["ifaces"]) <= {"lo"}
    return [
        DoctorCheck(
            "live run",
            result.isolation in ("full", "partial"),
            f"{mode}, uid {info['uid']} inside, {result.duration_ms:.0f} ms",
        ),
        DoctorCheck("layers", True, "every result reports: " + json.dumps(result.layers, sort_keys=True)),
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


def _mode(isolation: str, found: layers.Layers) -> str:
    if isolation == "full":
        return "full isolation"
    if isolation == "partial":
        return f"partial isolation (WEAKER: {', '.join(layers.weaker(found))}; see above)"
    return (
        f"WEAK MODE {isolation}: no namespaces and no seccomp, so the code can read every file the "
        "sandbox uid can (the bot's .env too, if readable) and reach the network; limits are rlimits"
    )


def _seccomp_check(mode: str, caps: str, isolation: str) -> DoctorCheck:
    if isolation not in ("full", "partial"):
        return DoctorCheck("seccomp", False, "not applied in weak mode")
    if mode != "2":
        why = "no syscall table for this architecture" if not seccomp.supported() else f"mode {mode}"
        return DoctorCheck("seccomp", False, f"no filter ({why}); namespaces still apply")
    families = "/".join(seccomp.ALLOWED_FAMILIES) + "/NETLINK_ROUTE"
    denied = len(seccomp.denied_numbers(os.uname().machine))
    detail = (
        f"filter on: sockets only {families} (others EAFNOSUPPORT, AF_VSOCK included); {denied} calls "
        f"denied (mount API, pidfd_getfd, ptrace, bpf, io_uring, keyrings, ...); CapEff {caps}"
    )
    return DoctorCheck("seccomp", True, detail)
