"""Host-side files of one run: its private directory, the size-limited output mount, file collection.

Everything here is synchronous file-system work; callers run it in a worker thread.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sandbox.locate import Identity
from sandbox.types import OutputFile, RunLimits

MiB = 1024 * 1024
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 2, 4, 8
_MNT_DETACH = 2
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
RUN_PREFIX = "codebot-run-"  # + owner pid + "-": lets a later start clean up after a crashed bot


@dataclass(frozen=True)
class RunDir:
    """A run's host directory: `out` is bound as the sandbox's working directory."""

    base: Path
    out: Path
    mounted: bool  # out is a size-limited tmpfs that must be unmounted

    @property
    def mpl(self) -> Path:
        return self.base / "mpl"  # only used without bwrap (weak mode)


def make_run_dir(ident: Identity, output_dir_mb: int, use_tmpfs: bool) -> RunDir:
    """Create the run dir, its `out` owned by the sandbox uid; mount a tmpfs of output_dir_mb if asked."""
    base = Path(tempfile.mkdtemp(prefix=f"{RUN_PREFIX}{os.getpid()}-"))
    out, mpl = base / "out", base / "mpl"
    mounted = False
    try:
        out.mkdir(mode=0o700)
        mpl.mkdir(mode=0o700)
        if use_tmpfs:
            _mount_tmpfs(out, output_dir_mb, ident)
            mounted = True
        # The base stays the bot's (searchable, not writable): a process of the sandbox uid outside this
        # run must not be able to swap the paths the bot later unmounts, deletes and collects from.
        os.chmod(base, 0o711)
        for path in (out, mpl):
            os.chown(path, ident.uid, ident.gid)
    except BaseException:
        remove_run_dir(RunDir(base, out, mounted))
        raise
    return RunDir(base, out, mounted)


def remove_run_dir(run_dir: RunDir) -> None:
    """Unmount and delete the run's directory; never raises for an already-removed one."""
    if run_dir.mounted:
        with contextlib.suppress(OSError):
            _umount(run_dir.out)
    shutil.rmtree(run_dir.base, onerror=_force_remove)


def _force_remove(func: object, path: str, exc_info: tuple) -> None:
    # Code may leave a read-only directory behind; make it removable and retry once.
    if isinstance(exc_info[1], FileNotFoundError):
        return
    with contextlib.suppress(OSError):
        os.chmod(os.path.dirname(path), 0o700)
        os.chmod(path, 0o700)
    with contextlib.suppress(OSError):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)


def copy_owned(src: Path, dest_dir: Path, ident: Identity) -> None:
    """Copy one file into dest_dir, owned by the sandbox uid."""
    dest = dest_dir / src.name
    shutil.copyfile(src, dest)
    os.chown(dest, ident.uid, ident.gid)


def collect_files(out: Path, limits: RunLimits) -> tuple[tuple[OutputFile, ...], tuple[str, ...]]:
    """Return the regular files left in out (within the caps) and the sanitised names skipped."""
    files: list[OutputFile] = []
    skipped: list[str] = []
    total = 0
    try:
        dir_fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return (), ()
    try:
        for raw in sorted(os.listdir(dir_fd)):
            name = sanitise(raw)
            if len(files) >= limits.max_files:
                skipped.append(name)
                continue
            data = _read_regular(
                dir_fd, raw, min(limits.max_file_bytes, limits.max_files_total_bytes - total)
            )
            if data is None:
                skipped.append(name)
                continue
            files.append(OutputFile(name=name, data=data))
            total += len(data)
    finally:
        os.close(dir_fd)
    return tuple(files), tuple(skipped)


def _read_regular(dir_fd: int, name: str, cap: int) -> bytes | None:
    """Read a regular file of at most cap bytes without following links; None if not allowed."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError:  # ELOOP for symlinks, ENXIO for sockets, ...
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > cap:
            return None
        chunks, left = [], cap + 1  # read one byte more than allowed to notice growth
        while left > 0 and (chunk := os.read(fd, min(left, MiB))):
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        return None if len(data) > cap else data
    except OSError:
        return None
    finally:
        os.close(fd)


def sanitise(name: str) -> str:
    """Return a file name that is safe to show and upload (no paths, no control or markup characters)."""
    clean = _UNSAFE.sub("_", name).lstrip(".") or "file"
    return clean[:100]


def _mount_tmpfs(target: Path, size_mb: int, ident: Identity) -> None:
    import ctypes  # only root mounts; keep the import off the CLI start-up path

    libc = ctypes.CDLL(None, use_errno=True)
    opts = f"size={size_mb * MiB},nr_inodes=4096,mode=0700,uid={ident.uid},gid={ident.gid}".encode()
    flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
    if libc.mount(b"tmpfs", str(target).encode(), b"tmpfs", flags, opts) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount tmpfs on {target}: {os.strerror(err)}")


def _umount(target: Path) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.umount2(str(target).encode(), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


def sweep_stale_run_dirs() -> int:
    """Remove run directories left by bot processes that died; return how many were removed."""
    removed = 0
    for base in Path(tempfile.gettempdir()).glob(RUN_PREFIX + "*"):
        owner = base.name[len(RUN_PREFIX) :].split("-", 1)[0]
        if not owner.isdigit() or pid_alive(int(owner)):
            continue
        out = base / "out"
        with contextlib.suppress(OSError):
            remove_run_dir(RunDir(base, out, mounted=os.path.ismount(out)))
            removed += 1
    return removed


def pid_alive(pid: int) -> bool:
    """Tell whether a process with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def can_mount_tmpfs() -> bool:
    """Tell whether per-run size-limited tmpfs mounts are possible (needs root)."""
    return os.geteuid() == 0
