"""Discord message -> routing decision and Incoming. Pure: no network, no discord.py state."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Literal

from core.types import Author, Incoming, IncomingFile, ThreadKey

PLATFORM = "discord"
THREAD_NAME_MAX = 100  # Discord's limit for channel and thread names
_ANY_MENTION = re.compile(r"<(?:@[!&]?|#)\d+>")


def dm_workspace(channel_id: int | str) -> str:
    """Each DM is its own workspace for limits and quotas, so one DM user cannot use up another's."""
    return f"dm-{channel_id}"


ChannelKind = Literal["text", "thread", "dm", "other"]


@dataclass(frozen=True)
class MessageFacts:
    """What routing needs to know about one MESSAGE_CREATE, extracted from discord.py objects."""

    message_id: int
    channel_id: int
    guild_id: int | None  # None in DMs
    channel_kind: ChannelKind
    parent_id: int | None  # the thread's parent channel
    author_id: int
    author_name: str
    author_is_bot: bool
    author_is_admin: bool
    mentions_bot: bool  # the bot user is in message.mentions (@everyone is not a mention)
    content: str
    is_system: bool = False  # joins, pins, thread-created notices...
    thread_owned_by_bot: bool = False  # the bot created this thread (its first answer may still be running)
    files: tuple[IncomingFile, ...] = ()  # the message's attachments


class Action(enum.Enum):
    IGNORE = "ignore"
    NEW_THREAD = "new-thread"  # create a public thread from the message and answer there
    IN_THREAD = "in-thread"  # answer in the thread the message is in
    IN_CHANNEL = "in-channel"  # channels without threads (voice/stage text chat): answer in place
    DM = "dm"


@dataclass(frozen=True)
class Route:
    action: Action
    key: ThreadKey | None = None
    needs_owner_check: bool = False  # answer only if the bot already owns this conversation


IGNORE = Route(Action.IGNORE)


def route(facts: MessageFacts) -> Route:
    """Decide whether and where the bot answers a message."""
    if facts.author_is_bot or facts.is_system:
        return IGNORE
    if facts.channel_kind == "dm":
        ch = str(facts.channel_id)
        return Route(Action.DM, ThreadKey(PLATFORM, dm_workspace(ch), ch, ch))
    guild = str(facts.guild_id)
    if facts.channel_kind == "thread":
        key = ThreadKey(PLATFORM, guild, str(facts.parent_id), str(facts.channel_id))
        addressed = facts.mentions_bot or facts.thread_owned_by_bot
        return Route(Action.IN_THREAD, key, needs_owner_check=not addressed)
    if not facts.mentions_bot:
        return IGNORE
    if facts.channel_kind == "text":
        # A thread started from a message has the message's id, so the key is known before it exists.
        return Route(
            Action.NEW_THREAD, ThreadKey(PLATFORM, guild, str(facts.channel_id), str(facts.message_id))
        )
    ch = str(facts.channel_id)
    return Route(Action.IN_CHANNEL, ThreadKey(PLATFORM, guild, ch, ch))


def strip_bot_mention(content: str, bot_id: int) -> str:
    """Remove the bot's own mention tokens (<@id> and the legacy <@!id>) and tidy the spaces."""
    text = re.sub(rf"<@!?{bot_id}>", " ", content)
    return re.sub(r"[ \t]+", " ", text).strip()


def to_incoming(facts: MessageFacts, key: ThreadKey, bot_id: int) -> Incoming:
    """Build the core's question value; the message id is the de-duplication key."""
    author = Author(str(facts.author_id), facts.author_name, facts.author_is_admin)
    text = strip_bot_mention(facts.content, bot_id)
    return Incoming(key, author, text, str(facts.message_id), files=facts.files)


def thread_name(question: str) -> str:
    """Name a thread after the question: one line, no mention tokens, at most 100 characters."""
    text = _ANY_MENTION.sub("", question)
    text = " ".join(text.replace("`", "").split())
    if not text:
        return "codebot"
    return text if len(text) <= THREAD_NAME_MAX else text[: THREAD_NAME_MAX - 1].rstrip() + "…"
