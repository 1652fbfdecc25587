"""Routing Discord messages to conversations (pure)."""

from __future__ import annotations

import dataclasses

from bot.discord.events import (
    Action,
    MessageFacts,
    route,
    strip_bot_mention,
    thread_name,
    to_incoming,
)
from core.types import ThreadKey

BOT = 999
BASE = MessageFacts(
    message_id=555,
    channel_id=10,
    guild_id=1,
    channel_kind="text",
    parent_id=None,
    author_id=42,
    author_name="alice",
    author_is_bot=False,
    author_is_admin=False,
    mentions_bot=True,
    content=f"<@{BOT}> what is the sqrt of 2",
)


def facts(**changes: object) -> MessageFacts:
    return dataclasses.replace(BASE, **changes)  # type: ignore[arg-type]


def test_mention_in_a_text_channel_starts_a_thread_keyed_by_the_message() -> None:
    r = route(BASE)
    assert r.action is Action.NEW_THREAD
    assert r.key == ThreadKey("discord", "1", "10", "555") and not r.needs_owner_check


def test_channel_messages_without_mention_are_ignored() -> None:
    assert route(facts(mentions_bot=False)).action is Action.IGNORE


def test_bots_and_system_messages_are_ignored() -> None:
    assert route(facts(author_is_bot=True)).action is Action.IGNORE
    assert route(facts(is_system=True)).action is Action.IGNORE
    assert route(facts(channel_kind="dm", guild_id=None, author_is_bot=True)).action is Action.IGNORE


def test_thread_messages_continue_only_owned_threads_unless_mentioned() -> None:
    plain = route(facts(channel_kind="thread", channel_id=77, parent_id=10, mentions_bot=False))
    assert plain.action is Action.IN_THREAD and plain.needs_owner_check
    assert plain.key == ThreadKey("discord", "1", "10", "77")
    mentioned = route(facts(channel_kind="thread", channel_id=77, parent_id=10))
    assert mentioned.action is Action.IN_THREAD and not mentioned.needs_owner_check
    ours = route(
        facts(
            channel_kind="thread", channel_id=77, parent_id=10, mentions_bot=False, thread_owned_by_bot=True
        )
    )
    assert (
        ours.action is Action.IN_THREAD and not ours.needs_owner_check
    )  # even before its first answer lands


def test_dm_is_one_conversation_per_channel_without_mention() -> None:
    r = route(facts(channel_kind="dm", guild_id=None, channel_id=31, mentions_bot=False))
    assert r.action is Action.DM and r.key == ThreadKey("discord", "dm-31", "31", "31")


def test_channels_without_threads_answer_in_place() -> None:
    r = route(facts(channel_kind="other"))
    assert r.action is Action.IN_CHANNEL and r.key == ThreadKey("discord", "1", "10", "10")


def test_incoming_strips_only_the_bot_mention_and_uses_the_message_id() -> None:
    r = route(facts(content=f"<@!{BOT}>  plot   sin(x) for <@7>", author_is_admin=True))
    assert r.key is not None
    inc = to_incoming(facts(content=f"<@!{BOT}>  plot   sin(x) for <@7>", author_is_admin=True), r.key, BOT)
    assert inc.text == "plot sin(x) for <@7>"
    assert inc.event_id == "555" and inc.author.id == "42" and inc.author.is_admin


def test_strip_bot_mention_anywhere() -> None:
    assert strip_bot_mention(f"hey <@{BOT}>, sum 1..10", BOT) == "hey , sum 1..10"


def test_thread_names_are_one_line_and_at_most_100_chars() -> None:
    assert thread_name("what is\n the `sqrt` of 2 <@5>") == "what is the sqrt of 2"
    long = thread_name("x" * 300)
    assert len(long) == 100 and long.endswith("…")
    assert thread_name("<@123>  ") == "codebot"
