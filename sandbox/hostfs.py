"""Host-side files of weak-mode runs (their private directory) and file-name sanitising.

With bwrap the working directory is a size-limited tmpfs inside the sandbox and nothing is made on the
host. Everything here is synchronous file-system work; callers run it in a worker thread.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sandbox.locate import Identity

_MNT_DETACH = 2
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
RUN_PREFIX = "codebot-run-"  # + owner pid + "-": lets a later start clean up after a crashed bot


@dataclass(frozen=True)
class RunDir:
    """A weak-mode run's host directory: `out` is its working directory (not size-limited)."""

    base: Path
    out: Path
    mounted: bool = False  # out is a tmpfs that must be unmounted (only dirs of older versions)

    @property
    def mpl(self) -> Path:
        return self.base / "mpl"  # only used without bwrap (weak mode)


def make_run_dir(ident: Identity) -> RunDir:
    """Create the run dir, its `out` and `mpl` owned by the sandbox uid."""
    base = Path(tempfile.mkdtemp(prefix=f"{RUN_PREFIX}{os.getpid()}-"))
    out, mpl = base / "out", base / "mpl"
    try:
        out.mkdir(mode=0o700)
        mpl.mkdir(mode=0o700)
        # The base stays the bot's (searchable, not writable): a process of the sandbox uid outside this
        # run must not be able to swap the paths the bot later deletes.
        os.chmod(base, 0o711)
        for path in (out, mpl):
            os.chown(path, ident.uid, ident.gid)
    except BaseException:
        remove_run_dir(RunDir(base, out))
        raise
    return RunDir(base, out)


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


def sanitise(name: str) -> str:
    """Return a file name that is safe to show and upload (no paths, no control or markup characters)."""
    clean = _UNSAFE.sub("_", name).lstrip(".") or "file"
    return clean[:100]


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
