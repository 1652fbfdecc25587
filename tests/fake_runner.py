"""A scripted stand-in for the sandbox, for tests of the core's logic (not of isolation or real runs).

It implements the core's Runner (core/agent.py) and WorkspaceRunner (core/threadfiles/runner.py):
`enqueue()` results (or exceptions to raise, such as SandboxUnavailable), then read `calls` to see what
the core asked to run, with which limits and workspace. Tests whose assertion is about a real run use the
real sandbox instead (tests/sandbox, tests/e2e).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from sandbox.api import MAX_CODE_CHARS
from sandbox.config import check_limits
from sandbox.types import OutputFile, RunLimits, RunResult, RunWorkspace


@dataclass(frozen=True)
class RunCall:
    """One run the core asked for."""

    code: str
    limits: RunLimits | None
    workspace: RunWorkspace | None


class FakeRunner:
    """Returns the enqueued results in order; when none is left, `default` (a clean run with no output)."""

    def __init__(self, default: RunResult | None = None) -> None:
        self.default = default or RunResult()
        self.calls: list[RunCall] = []
        self._script: deque[RunResult | BaseException] = deque()

    def enqueue(self, *outcomes: RunResult | BaseException) -> None:
        """Script the next runs: a RunResult is returned, an exception is raised."""
        self._script.extend(outcomes)

    async def run(
        self, code: str, limits: RunLimits | None = None, *, workspace: RunWorkspace | None = None
    ) -> RunResult:
        self.calls.append(RunCall(code, limits, workspace))
        # It refuses what the sandbox refuses: caps that are not positive raise, too much code fails.
        check_limits(limits or RunLimits())
        if len(code) > MAX_CODE_CHARS:
            return raised(f"the code is {len(code)} characters long; the limit is {MAX_CODE_CHARS}\n")
        outcome = self._script.popleft() if self._script else self.default
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    @property
    def codes(self) -> list[str]:
        """The code of every run asked for, in order."""
        return [c.code for c in self.calls]


def ran(
    stdout: str = "", result: str | None = None, files: tuple[OutputFile, ...] = (), **more: object
) -> RunResult:
    """A run that ended normally (what the sandbox reports for code that did not raise)."""
    return RunResult(stdout=stdout, result=result, files=files, duration_ms=12.0, **more)  # type: ignore[arg-type]


def raised(error: str, stdout: str = "") -> RunResult:
    """A run whose code raised: `error` is the traceback text, and the exit code is 1."""
    return RunResult(stdout=stdout, error=error, exit_code=1, duration_ms=12.0)


def killed(reason: str = "timeout") -> RunResult:
    """A run the sandbox killed at a limit (timeout, memory, output, ...); SIGKILL is exit code 137."""
    timed_out = reason == "timeout"
    return RunResult(exit_code=137, timed_out=timed_out, killed_reason=reason, duration_ms=500.0)  # type: ignore[arg-type]
