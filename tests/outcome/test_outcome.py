"""One run reads the same everywhere: every renderer formats core.outcome's facts, none decides them."""

from __future__ import annotations

from bot.console.render import render as console_render
from bot.discord.render import render_reply
from bot.slack.render import render as slack_render
from core.outcome import view
from core.tools import format_run
from core.types import ResultReply
from sandbox.types import RunResult

TRACEBACK = (
    'Traceback (most recent call last):\n  File "<main>", line 3\nZeroDivisionError: division by zero\n'
)
WARNING = "UserWarning: the cache is cold"
# The program warned on stderr, then raised: the traceback reached stderr too.
RAISED = RunResult(stderr=f"{WARNING}\n{TRACEBACK}", error=TRACEBACK, exit_code=1, duration_ms=12)


def surfaces(r: RunResult) -> dict[str, str]:
    reply = ResultReply(1, r)
    return {
        "slack": str([m.blocks for m in slack_render(reply)]),
        "discord": "\n".join(o.content for o in render_reply(reply)),
        "console": console_render(reply),
        "model": format_run(r),
    }


def test_a_warning_beside_an_exception_is_shown_on_every_surface_and_the_traceback_once():
    for name, text in surfaces(RAISED).items():
        assert WARNING in text, name  # Discord and the console used to drop stderr whenever code raised
        assert text.count("ZeroDivisionError") == 1, name  # Slack and the model used to show it twice


def test_stderr_that_is_only_the_traceback_is_not_repeated():
    r = RunResult(stderr=TRACEBACK, error=TRACEBACK, exit_code=1)
    assert [p.label for p in view(r).parts] == ["error"]
    for name, text in surfaces(r).items():
        assert text.count("ZeroDivisionError") == 1, name


def test_status_is_one_fact_per_run():
    cases = [
        (RunResult(timed_out=True, killed_reason="timeout", exit_code=137), "timeout"),
        (RunResult(killed_reason="memory", exit_code=137), "killed"),
        (RunResult(error="boom", exit_code=1), "error"),
        (RunResult(exit_code=3), "exit"),
        (RunResult(stdout="hi\n"), "ok"),
        (RunResult(timed_out=True), "timeout"),  # timed out without a kill reason is still not ok
    ]
    for run, status in cases:
        assert view(run).status == status
    assert view(RunResult(killed_reason="memory")).limit_name == "memory limit"
    assert "(failed)" in format_run(RunResult(timed_out=True))
