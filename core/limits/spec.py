"""The table of limits admins can set: name, unit, built-in default and ceiling, description."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

Kind = Literal["time", "memory", "output", "count", "tokens", "channels", "safety"]

SAFETY_MODES = ("off", "standard", "strict")  # weakest first; the operator's floor compares by index


class LimitError(ValueError):
    """A limit name or value was rejected; the message is one line, safe to show in chat."""


@dataclass(frozen=True)
class LimitSpec:
    """One limit as users see it. Numbers are in `unit`; `ceiling` is the built-in operator ceiling."""

    name: str
    kind: Kind
    unit: str  # short unit shown in tables ("s", "MB")
    unit_word: str  # unit in sentences ("seconds", "runs")
    default: float | str
    minimum: float | None
    ceiling: float | None
    description: str
    example: str

    @property
    def numeric(self) -> bool:
        return self.minimum is not None

    @property
    def field(self) -> str:
        """The attribute of EffectiveLimits: the name with its unit ("timeout_s", "memory_mb")."""
        return self.name + {"s": "_s", "MB": "_mb", "KB": "_kb"}.get(self.unit, "")

    @property
    def env(self) -> str:
        """Name of the environment variable holding the operator's default."""
        return f"CODEBOT_LIMIT_{self.name.upper()}"


# fmt: off
SPECS: tuple[LimitSpec, ...] = (
    LimitSpec("timeout", "time", "s", "seconds", 10, 1, 60, "wall-clock time per code run", "30s"),
    LimitSpec("memory", "memory", "MB", "MB", 256, 64, 1024, "memory per code run", "512MB"),
    LimitSpec("output", "output", "KB", "KB", 64, 1, 512, "stdout + stderr kept per run", "128KB"),
    LimitSpec("files", "count", "", "files", 10, 0, 20, "files returned per run", "5"),
    LimitSpec("steps", "count", "", "steps", 3, 1, 10, "code runs the agent may try per question", "5"),
    LimitSpec("user_runs_per_hour", "count", "", "runs", 30, 1, 1000, "questions per user per hour", "60"),
    LimitSpec("workspace_runs_per_day", "count", "", "runs", 500, 1, 100_000,
              "questions per workspace per day", "1000"),
    LimitSpec("concurrency", "count", "", "runs", 4, 1, 32,
              "questions answered at once; more wait in a queue", "2"),
    LimitSpec("tokens_per_day", "tokens", "", "tokens", 1_000_000, 1000, 100_000_000,
              "LLM tokens per workspace per UTC day", "2M"),
    LimitSpec("channels", "channels", "", "", "all", None, None,
              "channels the bot answers in: all, or a list", "#general #data"),
    LimitSpec("safety", "safety", "", "", "standard", None, None,
              "code review: strict, standard or off", "strict"),
    LimitSpec("file_size", "memory", "MB", "MB", 20, 1, 100, "one attached file", "50MB"),
    LimitSpec("thread_files", "memory", "MB", "MB", 100, 1, 1024, "a thread's files together", "200MB"),
    LimitSpec("thread_state", "memory", "MB", "MB", 50, 1, 500, "a thread's kept variables", "100MB"),
)
# fmt: on

BY_NAME = {s.name: s for s in SPECS}

# Other spellings people type; they resolve silently to the canonical name.
ALIASES = {
    "time": "timeout",
    "timeout_s": "timeout",
    "mem": "memory",
    "ram": "memory",
    "memory_mb": "memory",
    "output_kb": "output",
    "max_output": "output",
    "max_files": "files",
    "max_steps": "steps",
    "file_mb": "file_size",
    "max_file_size": "file_size",
    "workspace_size": "thread_files",
    "thread_workspace": "thread_files",
    "state": "thread_state",
    "state_size": "thread_state",
    "runs_per_hour": "user_runs_per_hour",
    "runs_per_day": "workspace_runs_per_day",
    "tokens": "tokens_per_day",
    "channel": "channels",
    "safety_mode": "safety",
    "mode": "safety",
}


def spec_for(raw_name: str) -> LimitSpec:
    """Resolve a typed limit name; raise LimitError suggesting the closest known name."""
    name = raw_name.strip().strip("`'\"").lower().replace("-", "_").replace(" ", "_")
    name = ALIASES.get(name, name)
    if name in BY_NAME:
        return BY_NAME[name]
    shown = raw_name.strip().replace("`", "'")[:40] or "(empty)"
    close = difflib.get_close_matches(name, [*BY_NAME, *ALIASES], n=1, cutoff=0.6)
    if close:
        return_name = ALIASES.get(close[0], close[0])
        raise LimitError(f"unknown limit `{shown}`; did you mean `{return_name}`?")
    raise LimitError(f"unknown limit `{shown}`; the limits are: {', '.join(BY_NAME)}")
