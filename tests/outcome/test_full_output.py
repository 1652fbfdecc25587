"""The full output of a step is one text: Slack's attachment, Discord's, and Slack's "Show full output"."""

from __future__ import annotations

from bot.discord.render import render_reply
from bot.outputs import FullOutputs
from bot.slack.actions import StepButtons
from bot.slack.render import RenderLimits, render, render_step
from core.control import step_ref
from core.types import ResultReply, StepView, ThreadKey
from sandbox.types import RunResult

TRACEBACK = (
    'Traceback (most recent call last):\n  File "<main>", line 3\nZeroDivisionError: division by zero\n'
)
WARNING = "UserWarning: the cache is cold"
CODE = "print('x' * 50_000); 1 / 0"
# Long enough to be cut on both platforms; the traceback reached stderr as well as `error`.
LONG = RunResult(stdout="x" * 50_000 + "\n", stderr=f"{WARNING}\n{TRACEBACK}", error=TRACEBACK, exit_code=1)


def test_the_full_output_reads_the_same_attached_on_slack_and_discord_and_in_the_modal():
    reply = ResultReply(1, LONG)
    [slack] = [a.content for m in render(reply) for a in m.attachments if a.filename.startswith("output_")]
    [discord] = [a.data for o in render_reply(reply) for a in o.files if a.name.startswith("output-")]
    step, key, outputs = StepView(1, CODE, result=LONG), ThreadKey("slack", "T1", "C1", "1.2"), FullOutputs()
    StepButtons(key, "", outputs, RenderLimits()).step(step, render_step(step))
    modal = outputs.get(key, step_ref(1, CODE))
    assert modal is not None
    assert slack.decode() == discord.decode() == modal
    assert WARNING in modal and modal.count("ZeroDivisionError") == 1  # the traceback once, not twice
    assert "x" * 50_000 in modal
