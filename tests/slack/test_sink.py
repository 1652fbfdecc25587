"""SlackSink against the fake Slack over real HTTP: status coalescing, thread posts, uploads, failures."""

from __future__ import annotations

import asyncio
import time

from bot.slack.events import Target
from bot.slack.sink import SlackSink
from core.types import AnswerReply, CodeReply, Progress, ResultReply
from sandbox.types import OutputFile, RunResult

THREAD = Target("C1", "100.000001", "100.000001")


def status_text(call) -> str:
    return call.params["blocks"][0]["elements"][0]["text"]


async def test_status_message_is_posted_once_then_updated_in_place_and_coalesced(slack, web_client):
    sink = SlackSink(web_client, THREAD, min_update_interval_s=0.3)
    await sink.progress(Progress.THINKING)
    await sink.progress(Progress.REVIEWING)  # within the interval: held back ...
    await sink.progress(Progress.RUNNING)  # ... and replaced by the newer state
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert slack.calls_to("chat.update") == []
    [update] = await slack.wait_for(lambda: slack.calls_to("chat.update"), timeout_s=2)
    assert "Running the code" in status_text(update)
    started = time.monotonic()
    await sink.progress(Progress.DONE)  # final state: shown at once, not coalesced
    assert time.monotonic() - started < 0.25
    updates = slack.calls_to("chat.update")
    assert [status_text(u) for u in updates][-1] == ":white_check_mark: Done"
    status_ts = slack.calls_to("chat.postMessage")[0]
    assert all(u.params["ts"] == updates[0].params["ts"] for u in updates)
    assert status_ts.params["thread_ts"] == "100.000001"
    await asyncio.sleep(0.4)
    assert len(slack.calls_to("chat.update")) == 2  # nothing stale was flushed after DONE


async def test_final_state_cancels_a_pending_update(slack, web_client):
    sink = SlackSink(web_client, THREAD, min_update_interval_s=5)
    await sink.progress(Progress.THINKING)
    await sink.progress(Progress.RUNNING)
    await sink.progress(Progress.FAILED, "the model could not be reached")
    await sink.aclose()
    [update] = slack.calls_to("chat.update")
    assert status_text(update) == ":x: Failed · the model could not be reached"


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
