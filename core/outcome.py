"""How a run ended, decided once: the facts every renderer (Slack, Discord, console, the model) formats,
so the same run reads the same on each platform; renderers only choose words and markup."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.text import duration
from sandbox.types import RunResult

Status = Literal["ok", "exit", "error", "timeout", "killed"]

# What each limit is called for a person.
LIMIT_NAMES = {
    "timeout": "time limit",
    "cpu": "CPU time limit",
    "memory": "memory limit",
    "output": "output limit",
}


@dataclass(frozen=True)
class Part:
    """One stream of a run's output worth showing."""

    label: str  # "stdout", "result", "error", "stderr"
    text: str
    keep_tail: bool = False  # tracebacks: the end matters as much as the start


@dataclass(frozen=True)
class RunView:
    """The derived facts of one RunResult; renderers choose words and markup, never the facts."""

    status: Status
    exit_code: int
    took: str  # "340 ms", "2.4 s"
    killed_reason: str | None  # set when status is "killed"
    parts: tuple[Part, ...]  # non-empty streams to show, in order
    truncated: bool  # the sandbox cut the output at its limit
    isolation: str  # "full" or the weaker mode's name

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def limit_name(self) -> str:
        """The limit a killed run hit, for a person ("memory limit")."""
        reason = self.killed_reason or ""
        return LIMIT_NAMES.get(reason, f"{reason} limit")

    @property
    def full_text(self) -> str:
        """Every part in full, headed by its label: the attached (or shown) full output of a step."""
        return "\n\n".join(f"== {p.label} ==\n{p.text}" for p in self.parts)

    @property
    def notes(self) -> tuple[str, ...]:
        """Plain-words caveats to append to the status line."""
        notes = []
        if self.truncated:
            notes.append("output truncated at the sandbox's limit")
        if self.isolation != "full":
            notes.append(f"isolation: {self.isolation}")
        return tuple(notes)


def status_of(r: RunResult) -> Status:
    """One word for how the run ended."""
    if r.timed_out or r.killed_reason == "timeout":
        return "timeout"
    if r.killed_reason:
        return "killed"
    if r.error is not None:
        return "error"
    return "exit" if r.exit_code != 0 else "ok"


def shown_stderr(r: RunResult) -> str:
    """stderr minus the traceback already shown as `error` ("" when nothing else is left).

    The supervisor reports the exception as `error`; the same traceback often also reached stderr, and
    showing it twice hides whatever else the program wrote there.
    """
    stderr = r.stderr or ""
    error = (r.error or "").strip()
    if error and error in stderr:
        stderr = stderr.replace(error, "", 1)
    return stderr if stderr.strip() else ""


def view(r: RunResult) -> RunView:
    """Return the facts of a run that every surface shows."""
    parts = (
        Part("stdout", r.stdout),
        Part("result", r.result or ""),
        Part("error", r.error or "", keep_tail=True),
        Part("stderr", shown_stderr(r), keep_tail=True),
    )
    status = status_of(r)
    return RunView(
        status=status,
        exit_code=r.exit_code,
        took=duration(r.duration_ms),
        killed_reason=r.killed_reason if status == "killed" else None,
        parts=tuple(p for p in parts if p.text.strip()),
        truncated=r.truncated,
        isolation=r.isolation,
    )
