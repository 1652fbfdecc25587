"""Build the command line and environment of one sandboxed interpreter (pure functions)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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


def python_args(layout: Layout, site: str, preimport: str, report_fd: int) -> list[str]:
    """Return the supervisor's argv: isolated mode, no site, no bytecode writes, unbuffered."""
    args = [str(layout.python), "-I", "-S", "-B", "-u", "-c", layout.supervisor, site, preimport]
    return [*args, str(report_fd)]


def bwrap_argv(
    layout: Layout, limits: RunLimits, preimport: str, report_fd: int, seccomp_fd: int | None = None
) -> list[str]:
    """Return the full bwrap command line; it holds no secret (it is visible in /proc/1/cmdline)."""
    assert layout.bwrap is not None
    env = {**_CODE_ENV, "HOME": "/tmp", "MPLCONFIGDIR": MPL_INSIDE}
    # --as-pid-1: the supervisor itself is the namespace's init (no bwrap reaper inside), so the code can
    # neither signal it nor outlive it; when it exits the kernel kills whatever is left.
    argv = [str(layout.bwrap), "--as-pid-1", "--unshare-user", "--uid", str(layout.uid_inside)]
    argv += ["--gid", str(layout.uid_inside), "--unshare-net", "--unshare-pid", "--unshare-ipc"]
    argv += ["--unshare-uts", "--unshare-cgroup-try", "--disable-userns", "--cap-drop", "ALL"]
    argv += ["--die-with-parent", "--new-session", "--clearenv", "--hostname", "sandbox"]
    for key, value in env.items():
        argv += ["--setenv", key, value]
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
    argv += ["--proc", "/proc", "--dev", "/dev", "--size", str(limits.tmp_mb * MiB), "--tmpfs", "/tmp"]
    # multiprocessing needs a writable /dev/shm; the rest of /dev is made read-only below
    argv += ["--size", str(SHM_MB * MiB), "--tmpfs", "/dev/shm"]
    argv += ["--dir", MPL_INSIDE]
    # Same path inside as outside, so the font cache built by setup stays valid in the sandbox.
    argv += ["--ro-bind", str(layout.site_dir), str(layout.site_dir)]
    if layout.fontlist is not None:
        argv += ["--ro-bind", str(layout.fontlist), f"{MPL_INSIDE}/{layout.fontlist.name}"]
    # The working directory is a size-limited tmpfs inside the sandbox (works without root): a run cannot
    # fill the host's disk, and its files come out through the supervisor's report.
    argv += ["--size", str(limits.output_dir_mb * MiB), "--tmpfs", OUT_INSIDE, "--chdir", OUT_INSIDE]
    for path in layout.masked:  # connect() to /dev/null: ECONNREFUSED
        if os.path.lexists(path):  # one removed since the scan would make bwrap fail to start
            argv += ["--ro-bind", "/dev/null", path]
    argv += ["--remount-ro", "/dev", "--remount-ro", "/"]
    if seccomp_fd is not None:
        argv += ["--add-seccomp-fd", str(seccomp_fd)]
    return argv + python_args(layout, str(layout.site_dir), preimport, report_fd)


def weak_argv(layout: Layout, preimport: str, report_fd: int) -> list[str]:
    """Return the command line without namespaces (weak mode: rlimits and the uid drop only)."""
    return python_args(layout, str(layout.site_dir), preimport, report_fd)


def weak_env(run_dir: RunDir) -> dict[str, str]:
    """Return the interpreter's whole environment in weak mode."""
    return {**_CODE_ENV, "HOME": str(run_dir.base), "MPLCONFIGDIR": str(run_dir.mpl)}
