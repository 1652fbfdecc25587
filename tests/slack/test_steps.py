"""One message per step on Slack: posted with the code, edited to show the verdict and the result."""

from __future__ import annotations

from bot.slack.events import Target
from bot.slack.sink import SlackSink
from core.types import (
    AnswerReply,
    CodeReply,
    NoticeReply,
    Progress,
    ResultReply,
    Verdict,
    VerdictReply,
)
from sandbox.types import OutputFile, RunResult
from tests.slack.payloads import mention
from tests.slack.stack import slack_stack

THREAD = Target("C1", "100.000001", "100.000001")
ALLOWED = Verdict(allowed=True, risk="low", checks=("static",))


async def test_a_step_is_one_message_that_grows_in_place(slack, web_client):
    sink = SlackSink(web_client, THREAD, min_update_interval_s=0)  # every stage shown
    await sink.post(CodeReply(1, "print(6 * 7)"))
    [step] = slack.thread_messages("C1", "100.000001")
    assert "print(6 * 7)" in str(step.blocks) and "Reviewing the code" in str(step.blocks)
    await sink.post(VerdictReply(1, ALLOWED))
    assert "Safety review: Allowed" in str(step.blocks) and "Running the code" in str(step.blocks)
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 64
    await sink.post(ResultReply(1, RunResult(stdout="42\n", files=(OutputFile("plot.png", png),))))
    shown = str(step.blocks)
    assert "print(6 * 7)" in shown and "Safety review: Allowed" in shown and "42" in shown
    assert "Running the code" not in shown and "plot.png" in shown
    assert step.edits == 2 and [c.params["ts"] for c in slack.calls_to("chat.update")] == [step.ts] * 2
    [plot] = slack.files
    assert plot["filename"] == "plot.png" and plot["thread_ts"] == "100.000001"
    await sink.post(AnswerReply("It is 42."))
    texts = [m.text for m in slack.thread_messages("C1", "100.000001") if not m.files]
    assert len(texts) == 2 and texts[0].startswith("Result (step 1): Ran OK") and texts[1] == "It is 42."


async def test_a_quick_run_shows_its_verdict_with_the_result_in_one_edit(slack, web_client):
    sink = SlackSink(web_client, THREAD, min_update_interval_s=30)
    await sink.post(CodeReply(1, "print(6 * 7)"))
    await sink.post(VerdictReply(1, ALLOWED))  # within the interval: held back ...
    await sink.post(ResultReply(1, RunResult(stdout="42\n")))  # ... and shown with the result, at once
    [step] = slack.thread_messages("C1", "100.000001")
    assert step.edits == 1
    assert "Safety review: Allowed" in str(step.blocks) and "42" in str(step.blocks)


async def test_a_refused_step_shows_its_verdict_and_no_running_line(slack, web_client):
    sink = SlackSink(web_client, THREAD)
    await sink.post(CodeReply(1, "import os; os.system('rm -rf /')"))
    refused = Verdict(allowed=False, risk="high", reasons=("runs a shell command",), checks=("static",))
    await sink.post(VerdictReply(1, refused))
    [step] = slack.thread_messages("C1", "100.000001")
    shown = str(step.blocks)
    assert "Refused" in shown and "runs a shell command" in shown
    assert "Running" not in shown and "Reviewing" not in shown


async def test_a_turn_that_ends_mid_step_says_the_step_stopped(slack, web_client):
    sink = SlackSink(web_client, THREAD)
    await sink.post(CodeReply(1, "while True: pass"))
    await sink.post(VerdictReply(1, ALLOWED))
    await sink.post(NoticeReply("error", "The sandbox failed while running this step."))
    await sink.progress(Progress.FAILED)
    step, notice = slack.thread_messages("C1", "100.000001")
    assert "Stopped before this step produced a result" in str(step.blocks)
    assert "Running the code" not in str(step.blocks)
    assert "sandbox failed" in str(notice.blocks)
    assert [c.params["name"] for c in slack.calls_to("reactions.add")] == ["x"]


async def test_three_steps_leave_three_step_messages_and_the_answer(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        for n in range(3):
            s.llm.enqueue_tool_call(f"print({n} * 10)")
        s.llm.enqueue_text("Done: 0, 10, 20.")
        root = "1700000100.000100"
        await s.event(mention("three runs please", ts=root))
        await s.slack.wait_for(lambda: "Done: 0, 10, 20." in s.thread("C1", root), timeout_s=60)
        await s.core.wait_idle(30)
    live = slack.thread_messages("C1", root)
    assert [m.text.split(":")[0] for m in live] == [
        "Result (step 1)",
        "Result (step 2)",
        "Result (step 3)",
        "Done",
    ]
    for n, step in enumerate(live[:3]):
        shown = str(step.blocks)
        assert f"print({n} * 10)" in shown and "Safety review: Allowed" in shown and f"{n * 10}" in shown
    assert slack.statuses[("C1", root)] == ""  # the status line was cleared
