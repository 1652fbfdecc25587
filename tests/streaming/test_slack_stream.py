"""Streamed answers on Slack: chat_stream appends, the chat.update fallback, failures mid-stream."""

from __future__ import annotations

from bot.slack.events import Target
from bot.slack.markup import to_markdown
from bot.slack.sink import SlackSink
from core.types import AnswerReply, NoticeReply, Progress
from tests.slack.payloads import mention
from tests.slack.stack import slack_stack

THREAD = Target("C1", "100.000001", "100.000001")
ASKER = ("T111", "U123")
ANSWER = "\n".join(f"{i}. Point {i}: the <!channel> said **{i * i}**." for i in range(1, 9))


def drafts(text: str) -> list[str]:
    """The drafts the core sends as a reply streams in, 8 characters at a time."""
    return [text[:n].lstrip() for n in range(8, len(text), 8)] + [text]


async def test_a_streamed_answer_is_assembled_from_several_appends(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        s.llm.stream_delay_s = 0.01
        s.llm.enqueue_text(ANSWER)
        root = "1700000300.000100"
        await s.event(mention("eight points please", ts=root))
        await s.slack.wait_for(lambda: slack.calls_to("chat.stopStream"), timeout_s=20)
        await s.core.wait_idle(10)
    [start] = slack.calls_to("chat.startStream")
    assert start.params["thread_ts"] == root
    assert (start.params["recipient_team_id"], start.params["recipient_user_id"]) == ("T111", "U123")
    assert len(slack.calls_to("chat.appendStream")) >= 1  # several pieces, not one post at the end
    [answer] = slack.thread_messages("C1", root)  # the streamed message is the only one
    assert answer.streamed == to_markdown(ANSWER) and not answer.streaming
    assert "<!channel>" not in answer.streamed and "<\u200b!channel>" in answer.streamed
    assert slack.calls_to("chat.postMessage") == []  # no status message, no separate answer


async def test_where_streaming_is_refused_one_message_is_updated_in_place(slack, web_client):
    slack.stream_error = "not_allowed"
    sink = SlackSink(web_client, THREAD, recipient=ASKER, min_update_interval_s=0)
    for text in drafts(ANSWER):
        await sink.answer_draft(text)
    await sink.post(AnswerReply(ANSWER))
    await sink.progress(Progress.DONE)
    [answer] = slack.thread_messages("C1", "100.000001")
    assert answer.blocks == [{"type": "markdown", "text": to_markdown(ANSWER)}]
    assert len(slack.calls_to("chat.postMessage")) == 1 and answer.edits >= 2
    assert len(slack.calls_to("chat.startStream")) == 1  # refused once, then never asked again


async def test_drafts_are_coalesced_to_one_update_per_interval(slack, web_client):
    slack.stream_error = "not_allowed"
    sink = SlackSink(web_client, THREAD, recipient=ASKER, min_update_interval_s=30)
    for text in drafts(ANSWER):  # ~50 drafts within the interval
        await sink.answer_draft(text)
    await sink.post(AnswerReply(ANSWER))
    assert len(slack.calls_to("chat.postMessage")) == 1  # the first draft, at once
    assert len(slack.calls_to("chat.update")) == 1  # then only the final answer
    [answer] = slack.thread_messages("C1", "100.000001")
    assert answer.blocks[0]["text"] == to_markdown(ANSWER)


async def test_a_stream_that_slack_stops_accepting_is_finished_by_update(slack, web_client):
    slack.fail_stream_after = 1  # the second append is refused
    sink = SlackSink(web_client, THREAD, recipient=ASKER, min_update_interval_s=0)
    for text in drafts(ANSWER):
        await sink.answer_draft(text)
    await sink.post(AnswerReply(ANSWER))
    [answer] = slack.thread_messages("C1", "100.000001")
    assert answer.blocks == [{"type": "markdown", "text": to_markdown(ANSWER)}]  # the same message
    assert slack.calls_to("chat.postMessage") == []


async def test_a_turn_failing_mid_answer_leaves_a_draft_that_says_it_stopped(slack, web_client):
    sink = SlackSink(web_client, THREAD, recipient=ASKER, min_update_interval_s=0)
    half = ANSWER[: len(ANSWER) // 2]
    for text in drafts(half)[:-1]:
        await sink.answer_draft(text)
    await sink.answer_draft(half)
    await sink.post(NoticeReply("error", "The language model could not be reached."))
    await sink.progress(Progress.FAILED)
    draft, notice = slack.thread_messages("C1", "100.000001")
    assert not draft.streaming and draft.streamed.startswith(to_markdown(half.rsplit("\n", 1)[0]))
    assert draft.streamed.endswith("_(The answer stopped here; see the message below.)_")
    assert "could not be reached" in str(notice.blocks)


async def test_a_draft_followed_by_code_is_withdrawn(slack, web_client):
    sink = SlackSink(web_client, THREAD, recipient=ASKER, min_update_interval_s=0)
    await sink.answer_draft("Let me compute that.\nFirst I will")
    assert len(slack.thread_messages("C1", "100.000001")) == 1
    await sink.answer_draft("")
    assert slack.thread_messages("C1", "100.000001") == []
