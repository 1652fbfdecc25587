"""SlackSink against the fake Slack over real HTTP: status coalescing, thread posts, uploads, failures."""

from __future__ import annotations

import asyncio

from bot.slack.events import Target
from bot.slack.sink import SlackSink
from core.types import AnswerReply, CodeReply, Progress, ResultReply
from sandbox.types import OutputFile, RunResult

THREAD = Target("C1", "100.000001", "100.000001")


def status_text(call) -> str:
    return call.params["blocks"][0]["elements"][0]["text"]


def frozen() -> float:
    """A clock that never moves: which updates are coalesced cannot depend on the machine's load."""
    return 1000.0


async def test_the_thread_status_is_set_coalesced_and_cleared_at_the_end(slack, web_client):
    sink = SlackSink(web_client, THREAD, min_update_interval_s=0.3, clock=frozen)
    await sink.progress(Progress.THINKING)
    await sink.progress(Progress.REVIEWING, "step 1")  # within the interval: held back ...
    await sink.progress(Progress.RUNNING, "step 1")  # ... and replaced by the newer state
    assert slack.status_history == ["is thinking…"]
    await slack.wait_for(lambda: len(slack.status_history) == 2, timeout_s=2)
    assert slack.status_history[-1] == "is running step 1…"
    await sink.progress(Progress.RUNNING, "step 2")  # held back for the interval ...
    await sink.progress(Progress.DONE)  # ... and dropped: DONE is shown within this call
    assert slack.status_history == ["is thinking…", "is running step 1…", ""]
    assert slack.statuses[("C1", "100.000001")] == ""
    assert slack.calls_to("chat.postMessage") == []  # nothing was posted for the status
    await asyncio.sleep(0.4)
    assert len(slack.status_history) == 3  # nothing stale was flushed after DONE


async def test_where_the_status_is_refused_a_status_message_stands_in_and_is_deleted(slack, web_client):
    slack.set_status_error = "missing_scope"
    sink = SlackSink(web_client, THREAD, min_update_interval_s=0.3, clock=frozen)
    await sink.progress(Progress.THINKING)
    await sink.progress(Progress.REVIEWING)  # within the interval: held back ...
    await sink.progress(Progress.RUNNING)  # ... and replaced by the newer state
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert slack.calls_to("chat.update") == []
    [update] = await slack.wait_for(lambda: slack.calls_to("chat.update"), timeout_s=2)
    assert "Running the code" in status_text(update)
    status = slack.calls_to("chat.postMessage")[0]
    assert status.params["thread_ts"] == "100.000001"
    assert [m.text for m in slack.thread_messages("C1", "100.000001")] == ["Running the code in the sandbox…"]
    await sink.post(AnswerReply("It is 1."))
    await sink.progress(Progress.DONE)
    [delete] = slack.calls_to("chat.delete")
    assert delete.params["ts"] == update.params["ts"]
    assert [m.text for m in slack.thread_messages("C1", "100.000001")] == ["It is 1."]
    assert len(slack.calls_to("assistant.threads.setStatus")) == 1  # refused once, not asked again
    await asyncio.sleep(0.4)
    assert len(slack.calls_to("chat.update")) == 1  # nothing stale was flushed after DONE


async def test_final_state_cancels_a_pending_update(slack, web_client):
    slack.set_status_error = "missing_scope"
    sink = SlackSink(web_client, THREAD, min_update_interval_s=5)
    await sink.progress(Progress.THINKING)
    await sink.progress(Progress.RUNNING)
    await sink.progress(Progress.FAILED, "the model could not be reached")
    await sink.aclose()
    assert slack.calls_to("chat.update") == []  # the pending "running" never showed
    assert len(slack.calls_to("chat.delete")) == 1 and slack.thread_messages("C1", "100.000001") == []


async def test_replies_land_in_the_thread_with_files_uploaded_there(slack, web_client):
    sink = SlackSink(web_client, THREAD)
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10
    stdout = "".join(f"{i}\n" for i in range(5000))
    await sink.post(CodeReply(1, "print(1)"))
    await sink.post(ResultReply(1, RunResult(stdout=stdout, files=(OutputFile("plot.png", png),))))
    await sink.post(AnswerReply("It is 1."))
    posts = slack.thread_posts("C1", "100.000001")
    assert posts[0].params["text"] == "Code (step 1)"
    assert posts[-1].params["text"] == "It is 1."
    by_name = {f["filename"]: f for f in slack.files}
    assert set(by_name) == {"plot.png", "output_step1.txt"}
    assert all(f["thread_ts"] == "100.000001" and f["channel"] == "C1" for f in slack.files)
    assert slack.uploads[by_name["plot.png"]["id"]] == png
    assert stdout in slack.uploads[by_name["output_step1.txt"]["id"]].decode()


async def test_failed_upload_keeps_the_text_and_adds_a_short_note(slack, web_client):
    slack.fail_upload = True
    sink = SlackSink(web_client, THREAD)
    await sink.post(ResultReply(1, RunResult(stdout="done", files=(OutputFile("data.csv", b"a,b\n"),))))
    texts = [p.params["text"] for p in slack.thread_posts("C1", "100.000001")]
    assert texts[0].startswith("Result (step 1): Ran OK")
    assert texts[1] == "Could not upload `data.csv`"
    assert slack.files == []


async def test_rate_limited_post_is_retried_after_retry_after(slack, web_client):
    slack.fail_next("chat.postMessage", status=429, retry_after=0)
    sink = SlackSink(web_client, THREAD)
    await sink.post(AnswerReply("hello"))
    calls = slack.calls_to("chat.postMessage")
    assert len(calls) == 2 and calls[1].params["text"] == "hello"


async def test_a_slack_error_is_absorbed_not_raised(slack, web_client):
    slack.fail_next("chat.postMessage", status=200, retry_after=None, error="channel_not_found")
    sink = SlackSink(web_client, THREAD)
    await sink.post(AnswerReply("lost"))  # must not raise: the core's bookkeeping goes on
    await sink.post(AnswerReply("kept"))
    assert [c.params["text"] for c in slack.calls_to("chat.postMessage")] == ["lost", "kept"]


async def test_top_level_dm_replies_carry_no_thread(slack, web_client):
    sink = SlackSink(web_client, Target("D1", None, "5.5"))
    await sink.progress(Progress.THINKING)
    await sink.post(ResultReply(1, RunResult(files=(OutputFile("a.csv", b"1,2\n"),))))
    await sink.post(AnswerReply("hi"))
    texts = [p.params["text"] for p in slack.thread_posts("D1", None)]
    assert texts[0] == "Thinking…" and texts[-1] == "hi" and len(texts) == 3
    assert [(f["filename"], f["channel"], f["thread_ts"]) for f in slack.files] == [("a.csv", "D1", None)]
