"""The buttons on Slack's one-message-per-step layout: Stop while a step runs, Re-run after its result.

The sink is driven directly (real slack-sdk against the fake, which checks Block Kit limits), so each
stage of a step can be looked at as the thread shows it.
"""

from __future__ import annotations

from bot.slack.actions import FULL, RERUN, STOP, FullOutputs, StepButtons
from bot.slack.events import Target
from bot.slack.render import RenderLimits
from bot.slack.sink import SlackSink
from core.control import step_ref
from core.types import AnswerReply, CodeReply, Progress, ResultReply, ThreadKey, Verdict, VerdictReply
from sandbox.types import RunResult
from tests.fakes.slack_fake import FakeSlack

THREAD = Target("C1", "100.000001", "100.000001")
KEY = ThreadKey("slack", "T1", "C1", "100.000001")
ALLOWED = Verdict(allowed=True, risk="low", checks=("static",))
CODE = "print(6 * 7)"


def buttons(turn_ref: str = "Ev123", outputs: FullOutputs | None = None) -> StepButtons:
    return StepButtons(KEY, turn_ref, outputs or FullOutputs(), RenderLimits())


def action_ids(slack: FakeSlack, ts: str) -> list[str]:
    return [b["action_id"] for b in slack.interactive.buttons(ts)]


async def test_stop_rides_on_the_running_step_and_rerun_replaces_it_with_the_result(slack, web_client):
    sink = SlackSink(web_client, THREAD, min_update_interval_s=0, buttons=buttons())
    await sink.post(CodeReply(1, CODE))
    [step] = slack.thread_messages("C1", "100.000001")
    assert action_ids(slack, step.ts) == [STOP]  # reviewing: the turn can be stopped from here
    stop = slack.interactive.buttons(step.ts)[0]
    assert stop["value"] == "Ev123" and stop["style"] == "danger"
    await sink.post(VerdictReply(1, ALLOWED))
    assert action_ids(slack, step.ts) == [STOP]  # running
    await sink.post(ResultReply(1, RunResult(stdout="42\n")))
    assert action_ids(slack, step.ts) == [RERUN]  # the result is in: Stop is gone, Re-run is there
    assert slack.interactive.buttons(step.ts)[0]["value"] == step_ref(1, CODE)
    await sink.post(AnswerReply("It is 42."))
    await sink.progress(Progress.DONE)
    await sink.aclose()
    step_message, answer = slack.thread_messages("C1", "100.000001")  # the step and the answer, no more
    assert answer.text == "It is 42." and not action_ids(slack, answer.ts)
    assert step_message.edits == 2  # the buttons came with the edits that show the step: none extra
    assert slack.refused == []  # every message was within Slack's Block Kit limits


async def test_a_turn_that_ends_while_its_step_runs_takes_stop_away(slack, web_client):
    sink = SlackSink(web_client, THREAD, min_update_interval_s=0, buttons=buttons())
    await sink.post(CodeReply(1, CODE))
    await sink.post(VerdictReply(1, ALLOWED))
    [step] = slack.thread_messages("C1", "100.000001")
    assert action_ids(slack, step.ts) == [STOP]
    await sink.progress(Progress.FAILED)
    await sink.aclose()
    assert "Stopped before this step" in str(step.blocks)
    assert action_ids(slack, step.ts) == []  # no Stop on a turn that is over, no Re-run without a result


async def test_a_cut_output_offers_show_full_output_on_the_step(slack, web_client):
    outputs = FullOutputs()
    sink = SlackSink(web_client, THREAD, min_update_interval_s=0, buttons=buttons(outputs=outputs))
    long = "".join(f"line {i}\n" for i in range(3000))
    await sink.post(CodeReply(1, CODE))
    await sink.post(VerdictReply(1, ALLOWED))
    await sink.post(ResultReply(1, RunResult(stdout=long)))
    [step] = [m for m in slack.thread_messages("C1", "100.000001") if not m.files]
    assert action_ids(slack, step.ts) == [RERUN, FULL]
    assert "line 2999" in (outputs.get(KEY, step_ref(1, CODE)) or "")
    assert slack.refused == []


async def test_where_setstatus_is_refused_the_status_message_carries_stop_until_deleted(slack, web_client):
    slack.set_status_error = "missing_scope"
    sink = SlackSink(web_client, THREAD, min_update_interval_s=0, buttons=buttons())
    await sink.progress(Progress.THINKING)
    [status] = slack.thread_messages("C1", "100.000001")
    assert action_ids(slack, status.ts) == [STOP]
    await sink.post(AnswerReply("Hello."))
    await sink.progress(Progress.DONE)
    await sink.aclose()
    assert [m.text for m in slack.thread_messages("C1", "100.000001")] == ["Hello."]  # status deleted


async def test_a_rerun_step_offers_rerun_but_no_stop(slack, web_client):
    sink = SlackSink(web_client, THREAD, min_update_interval_s=0, buttons=buttons(turn_ref=""))
    await sink.post(CodeReply(1, CODE))
    [step] = slack.thread_messages("C1", "100.000001")
    assert action_ids(slack, step.ts) == []  # a re-run is not a turn that Stop could name
    await sink.post(VerdictReply(1, ALLOWED))
    await sink.post(ResultReply(1, RunResult(stdout="42\n")))
    assert action_ids(slack, step.ts) == [RERUN]
