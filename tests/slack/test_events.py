"""Slack payload -> Incoming, filtering and command parsing (pure)."""

from __future__ import annotations

from bot.slack import events
from core.types import Author, ThreadKey

BOT = "UBOT"


def body(event: dict, event_id: str = "Ev1") -> dict:
    return {"team_id": "T1", "event_id": event_id, "type": "event_callback", "event": event}


def test_channel_mention_becomes_a_question_in_the_message_thread():
    event = {
        "type": "app_mention",
        "user": "U1",
        "text": "<@UBOT> what is 2 &lt; 3 &amp; ok?",
        "ts": "100.000001",
        "channel": "C1",
    }
    incoming = events.to_incoming(body(event), event, BOT, Author("U1", "ann"))
    assert incoming.key == ThreadKey("slack", "T1", "C1", "100.000001")
    assert incoming.text == "what is 2 < 3 & ok?"
    assert incoming.event_id == "Ev1"
    target = events.reply_target(event)
    assert (target.channel, target.thread_ts, target.message_ts) == ("C1", "100.000001", "100.000001")


def test_mention_inside_a_thread_continues_that_thread():
    event = {"user": "U1", "text": "<@UBOT> again", "ts": "105.5", "thread_ts": "100.1", "channel": "C1"}
    assert events.thread_key("T1", event).thread == "100.1"
    assert events.reply_target(event).thread_ts == "100.1"
    assert events.reply_target(event).message_ts == "105.5"


def test_dm_top_level_is_one_conversation_answered_top_level():
    first = {"user": "U1", "text": "hi", "ts": "1.1", "channel": "D9", "channel_type": "im"}
    second = {**first, "ts": "2.2"}
    assert (
        events.thread_key("T1", first)
        == events.thread_key("T1", second)
        == ThreadKey("slack", "T1", "D9", "D9")
    )
    assert events.reply_target(first).thread_ts is None
    in_thread = {**first, "ts": "3.3", "thread_ts": "1.1"}
    assert events.thread_key("T1", in_thread).thread == "1.1"
    assert events.reply_target(in_thread).thread_ts == "1.1"


def test_slack_markup_is_turned_back_into_what_the_person_typed():
    text = "<@UBOT>  plot <https://example.com/a?b=1&amp;c=2|this> for <@U2> in <#C5|general> <!here>"
    assert events.plain_text(text, BOT) == "plot this for @U2 in #general @here"
    assert events.plain_text("<mailto:a@b.c|a@b.c> <https://x.y>") == "a@b.c https://x.y"


def test_follow_up_filter_skips_edits_bots_mentions_and_channel_chatter():
    base = {
        "type": "message",
        "user": "U1",
        "text": "now red",
        "ts": "5.5",
        "thread_ts": "1.1",
        "channel": "C1",
        "channel_type": "channel",
    }
    assert events.message_needs_thread_check(base, BOT)
    assert events.message_needs_thread_check({**base, "subtype": "thread_broadcast"}, BOT)
    assert not events.message_needs_thread_check({**base, "subtype": "message_changed"}, BOT)
    assert not events.message_needs_thread_check({**base, "subtype": "message_deleted"}, BOT)
    assert not events.message_needs_thread_check({**base, "bot_id": "B2"}, BOT)
    assert not events.message_needs_thread_check({**base, "user": BOT}, BOT)
    assert not events.message_needs_thread_check({**base, "text": "<@UBOT> hi"}, BOT)  # app_mention has it
    top_level = {k: v for k, v in base.items() if k != "thread_ts"}
    assert not events.message_needs_thread_check(top_level, BOT)
    dm = {**top_level, "channel": "D1", "channel_type": "im", "text": "<@UBOT> hi"}
    assert events.message_needs_thread_check(dm, BOT)  # no app_mention in DMs: the message is ours


def test_command_text_and_thread_references():
    assert events.parse_command_text("") == ("help", ())
    assert events.parse_command_text("  SET timeout_s 5 ") == ("set", ("timeout_s", "5"))
    link = "https://acme.slack.com/archives/C0123ABC/p1700000000000100"
    assert events.parse_thread_ref(link, "CX") == ("C0123ABC", "1700000000.000100")
    reply_link = link.replace("000100", "000200") + "?thread_ts=1700000000.000100&cid=C0123ABC"
    assert events.parse_thread_ref(f"<{reply_link}>", "CX") == ("C0123ABC", "1700000000.000100")
    assert events.parse_thread_ref("1700000000.000100", "CX") == ("CX", "1700000000.000100")
    assert events.parse_thread_ref("yesterday", "CX") is None
