"""Build the command line and environment of one sandboxed interpreter (pure functions)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sandbox import bootstrap
from sandbox.hostfs import RunDir
from sandbox.types import RunLimits

MiB = 1024 * 1024
SHM_MB = 16
OUT_INSIDE = "/tmp/out"
MPL_INSIDE = "/tmp/mpl"
# bwrap itself gets only this: its pid 1 keeps bwrap's environment, visible in /proc/1/environ.
BWRAP_ENV = {"PATH": "/usr/bin:/bin"}
_CODE_ENV = {
    "PATH": "/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "MPLBACKEND": "Agg",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MALLOC_ARENA_MAX": "2",  # glibc arenas otherwise eat the address-space limit per thread
}


@dataclass(frozen=True)
class Layout:
    """Fixed facts about this machine's sandbox, resolved once at start-up."""

    bwrap: Path | None  # None = weak mode (no namespaces)
    python: Path
    site_dir: Path
    fontlist: Path | None  # matplotlib font cache prebuilt by setup
    supervisor: str  # source of sandbox/supervisor.py
    supervisor_code: bytes | None = None  # its code object, marshalled by `python` (sandbox/bootstrap.py)
    seccomp: bytes | None = None  # BPF program for --add-seccomp-fd (None: no filter on this arch)
    uid_inside: int = 65534
    ro_binds: tuple[str, ...] = ("/usr",)  # the parts of /usr bound read-only (see interpreter_binds)
    masked: tuple[str, ...] = ()  # unix sockets found under the bound trees, hidden under /dev/null


def interpreter_binds(python: Path) -> tuple[str, ...]:
    """Return the parts of /usr a Debian-layout interpreter needs; all of /usr for any other interpreter.

    Less bound is less reachable (a socket or a secret someone left under /usr/local, /usr/share...), and
    the socket scan over these trees takes ~30 ms instead of ~0.5-2 s for the whole of /usr.
    """
    if python.parent != Path("/usr/bin") or not python.name.startswith("python3."):
        return ("/usr",)
    wanted = ["/usr/bin", f"/usr/lib/{python.name}", "/usr/lib64", "/usr/lib/locale"]
    wanted += ["/usr/share/zoneinfo", "/usr/share/fonts", "/usr/share/fontconfig"]  # pandas, matplotlib
    wanted += sorted(str(p) for p in Path("/usr/lib").glob("*-linux-gnu*"))  # shared libraries
    return tuple(p for p in wanted if os.path.isdir(p) and not os.path.islink(p))


def python_args(
    layout: Layout,
    site: str,
    preimport: str,
    report_fd: int,
    code_fd: int | None = None,
    switch: tuple[int, int] | None = None,
) -> list[str]:
    """Return the supervisor's argv: isolated mode, no site, no bytecode writes, unbuffered.

    With `code_fd` (a memfd holding layout.supervisor_code) the interpreter loads the precompiled
    supervisor instead of compiling its source. With `switch` (uid, gid) the supervisor starts as root and
    switches to them itself before anything else (see bwrap_argv).
    """
    text = layout.supervisor
    if code_fd is not None and layout.supervisor_code is not None:
        text = bootstrap.loader(code_fd, len(layout.supervisor_code))
    args = [str(layout.python), "-I", "-S", "-B", "-u", "-c", text, site, preimport, str(report_fd)]
    return args if switch is None else [*args, str(switch[0]), str(switch[1])]


def bwrap_argv(
    layout: Layout,
    limits: RunLimits,
    preimport: str,
    report_fd: int,
    seccomp_fd: int | None = None,
    code_fd: int | None = None,
    switch: tuple[int, int] | None = None,
) -> list[str]:
    """Return the full bwrap command line; it holds no secret (it is visible in /proc/1/cmdline).

    `switch` (uid, gid): bwrap runs as root and the supervisor drops to that host uid itself, instead of
    bwrap being started through setpriv as that uid (an exec less: 1-2 ms of every cold start). There is
    then no user namespace (it would map the sandbox to root); the seccomp filter, which the caller must
    pass, refuses every new namespace, as --disable-userns does otherwise.
    """
    assert layout.bwrap is not None
    assert switch is None or seccomp_fd is not None, "without the filter the code could make a user ns"
    env = {**_CODE_ENV, "HOME": "/tmp", "MPLCONFIGDIR": MPL_INSIDE}
    # --as-pid-1: the supervisor itself is the namespace's init (no bwrap reaper inside), so the code can
    # neither signal it nor outlive it; when it exits the kernel kills whatever is left.
    argv = [str(layout.bwrap), "--as-pid-1", *_identity_args(layout, switch), "--unshare-net"]
    argv += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    argv += ["--die-with-parent", "--new-session", "--clearenv", "--hostname", "sandbox"]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    argv += _mount_args(layout, limits, () if switch is None else ("--perms", "1777"))
    if seccomp_fd is not None:
        argv += ["--add-seccomp-fd", str(seccomp_fd)]
    return argv + python_args(layout, str(layout.site_dir), preimport, report_fd, code_fd, switch)


def _identity_args(layout: Layout, switch: tuple[int, int] | None) -> list[str]:
    if switch is None:  # started as the sandbox uid: a user namespace maps it to uid_inside
        uid = str(layout.uid_inside)
        return ["--unshare-user", "--uid", uid, "--gid", uid, "--disable-userns", "--cap-drop", "ALL"]
    # Started as root: the supervisor needs these three to drop the bounding set and switch uid, and loses
    # them (and every other) on the switch; it checks that none is left before it goes on.
    keep = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")
    return ["--cap-drop", "ALL", *(arg for cap in keep for arg in ("--cap-add", cap))]


def _mount_args(layout: Layout, limits: RunLimits, perms: tuple[str, ...]) -> list[str]:
    """Return the filesystem: read-only binds, private tmpfs mounts, masked sockets.

    `perms` go before each directory the code writes: made by root (see bwrap_argv), they must be
    world-writable for the sandbox uid (nothing else runs in the sandbox).
    """
    argv: list[str] = []
    if perms:  # bwrap makes a bind's missing parents 0700, which only its owner (root here) could cross
        for parent in _parents((*layout.ro_binds, "/etc/fonts", str(layout.site_dir))):
            argv += ["--perms", "0755", "--dir", parent]
    for tree in layout.ro_binds:
        argv += ["--ro-bind", tree, tree]
    for link, target in (
        ("/lib", "usr/lib"),
        ("/lib64", "usr/lib64"),
        ("/bin", "usr/bin"),
        ("/sbin", "usr/sbin"),
    ):
        argv += ["--symlink", target, link]
    argv += ["--ro-bind-try", "/etc/fonts", "/etc/fonts"]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += [*perms, "--size", str(limits.tmp_mb * MiB), "--tmpfs", "/tmp"]
    # multiprocessing needs a writable /dev/shm; the rest of /dev is made read-only below
    argv += [*perms, "--size", str(SHM_MB * MiB), "--tmpfs", "/dev/shm"]
    argv += [*perms, "--dir", MPL_INSIDE]
    # Same path inside as outside, so the font cache built by setup stays valid in the sandbox.
    argv += ["--ro-bind", str(layout.site_dir), str(layout.site_dir)]
    if layout.fontlist is not None:
        argv += ["--ro-bind", str(layout.fontlist), f"{MPL_INSIDE}/{layout.fontlist.name}"]
    # The working directory is a size-limited tmpfs inside the sandbox (works without root): a run cannot
    # fill the host's disk, and its files come out through the supervisor's report.
    argv += [*perms, "--size", str(limits.output_dir_mb * MiB), "--tmpfs", OUT_INSIDE, "--chdir", OUT_INSIDE]
    for path in layout.masked:  # connect() to /dev/null: ECONNREFUSED
        if os.path.lexists(path):  # one removed since the scan would make bwrap fail to start
            argv += ["--ro-bind", "/dev/null", path]
    return [*argv, "--remount-ro", "/dev", "--remount-ro", "/"]


def _parents(paths: tuple[str, ...]) -> list[str]:
    """Return every proper ancestor of paths but /, each once, parents before children."""
    found = {str(parent) for path in paths for parent in Path(path).parents if str(parent) != "/"}
    return sorted(found, key=lambda p: (p.count("/"), p))


def weak_argv(layout: Layout, preimport: str, report_fd: int, code_fd: int | None = None) -> list[str]:
    """Return the command line without namespaces (weak mode: rlimits and the uid drop only)."""
    return python_args(layout, str(layout.site_dir), preimport, report_fd, code_fd)


def weak_env(run_dir: RunDir) -> dict[str, str]:
    """Return the interpreter's whole environment in weak mode."""
    return {**_CODE_ENV, "HOME": str(run_dir.base), "MPLCONFIGDIR": str(run_dir.mpl)}
