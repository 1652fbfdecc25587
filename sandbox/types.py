"""Frozen values that cross the sandbox boundary: the limits of one run and its outcome."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

KilledReason = Literal["timeout", "cpu", "memory", "output"]

MiB = 1024 * 1024


@dataclass(frozen=True)
class RunLimits:
    """Caps applied to one run. Every cap has a unit in its name."""

    timeout_s: float = 10.0  # wall clock, from the moment the code is handed over
    cpu_s: float = 10.0  # CPU seconds, all threads and children together
    memory_mb: int = 256  # address space / memory cgroup
    max_processes: int = 32  # processes + threads (pids cgroup or RLIMIT_NPROC)
    max_open_files: int = 256
    max_output_bytes: int = 64 * 1024  # stdout + stderr kept; the run is killed on overflow
    max_files: int = 10  # files returned from the working directory
    max_file_bytes: int = 8 * MiB  # per returned file
    max_files_total_bytes: int = 16 * MiB  # all returned files together
    output_dir_mb: int = 32  # total size of the writable working directory
    tmp_mb: int = 64  # private /tmp

    def replace(self, **changes: Any) -> RunLimits:
        """Return a copy with some caps changed."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class OutputFile:
    """A regular file the code left in its working directory."""

    name: str  # sanitised base name, safe to show and to upload
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def is_image(self) -> bool:
        return self.name.lower().endswith((".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"))


@dataclass(frozen=True)
class KeptName:
    """A top-level name whose value a run left behind and the next run will see again."""

    name: str
    type: str  # e.g. "DataFrame", "int", "module"
    summary: str = ""  # short, bounded repr for the model


@dataclass(frozen=True)
class RunWorkspace:
    """What a run starts from: the thread's files and its kept Python state (issue 14).

    `state` is an opaque blob written by an earlier run's supervisor; it is only ever unpickled inside
    the sandbox, never in the bot. An empty blob means a fresh namespace.
    """

    files: tuple[OutputFile, ...] = ()  # placed in the working directory before the code runs
    state: bytes = b""
    keep_state: bool = False  # save the namespace after the run (RunResult.state)
    max_state_bytes: int = 50 * MiB


@dataclass(frozen=True)
class RunResult:
    """Outcome of one run. User-code failures are values here, never exceptions."""

    stdout: str = ""
    stderr: str = ""
    result: str | None = None  # repr() of the variable `result`, if the code set it
    error: str | None = None  # the exception and traceback, if the code raised
    exit_code: int = 0  # 128+N when killed by signal N (snekbox convention)
    timed_out: bool = False
    truncated: bool = False  # output exceeded max_output_bytes
    killed_reason: KilledReason | None = None
    duration_ms: float = 0.0
    files: tuple[OutputFile, ...] = field(default_factory=tuple)
    skipped_files: tuple[str, ...] = field(default_factory=tuple)  # names over a cap, symlinks, FIFOs...
    isolation: str = "full"  # "full"; "partial" (a limit is weaker: see layers); or the weak mode's name
    layers: dict[str, str | bool] = field(default_factory=dict)  # which layers held (sandbox/layers.py)
    # With a RunWorkspace: `files` holds only files the run created or changed, and the kept state.
    state: bytes = b""  # opaque; store it and hand it back in the next RunWorkspace
    kept: tuple[KeptName, ...] = field(default_factory=tuple)
    dropped: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # (name, why it was not kept)
    # True: `state` is the namespace this run left (store it, replacing the previous one). False: no new
    # state (no workspace, keep_state off, or the run was killed or died first): keep the previous one.
    state_saved: bool = False
    deleted_files: tuple[str, ...] = field(default_factory=tuple)  # workspace files the run removed
    unplaced: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # (file, why it was not put in)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.error is None and self.killed_reason is None

    @property
    def outcome(self) -> str:
        """One word for how the run ended: ok, error, timeout, or killed:<reason>."""
        if self.timed_out or self.killed_reason == "timeout":
            return "timeout"
        if self.killed_reason:
            return f"killed:{self.killed_reason}"
        return "ok" if self.ok else "error"

    def to_json(self) -> dict[str, Any]:
        """Return the JSON shape used by `codebot run --json` (file contents omitted)."""
        return {
            "stdout": self.stdout,
            "stderr": self.stderr,
            "result": self.result,
            "error": self.error,
            "exit_code": self.exit_code,
            "timed_out": self.timed_out,
            "truncated": self.truncated,
            "killed_reason": self.killed_reason,
            "duration_ms": round(self.duration_ms, 1),
            "files": [{"name": f.name, "size": f.size} for f in self.files],
            "skipped_files": list(self.skipped_files),
            "isolation": self.isolation,
            "layers": dict(self.layers),
        }


class SandboxUnavailable(RuntimeError):
    """Isolation cannot be set up here; the message says why and how to fix it."""
