"""Slack payloads -> platform-neutral values. Pure functions: no network, no SDK objects."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.types import Author, Incoming, IncomingFile, ThreadKey

PLATFORM = "slack"

# Subtypes that are still a person writing to us; every other subtype (edits, deletes, joins,
# bot_message, ...) is not a question.
_USER_SUBTYPES = frozenset({"file_share", "thread_broadcast"})

_LINK = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")
_THREAD_LINK = re.compile(r"/archives/([A-Z0-9]+)/p(\d{10})(\d{6})")
_THREAD_TS_PARAM = re.compile(r"[?&]thread_ts=(\d{10}\.\d{6})")
_TS = re.compile(r"\d{10}\.\d{6}")
MAX_FILES_PER_MESSAGE = 20  # Slack allows 10 per message today; more is not a message from Slack
_NAME_MAX = 1024  # the core sanitises and shortens names; this only bounds what we carry


@dataclass(frozen=True)
class Target:
    """Where replies to one event go: a channel, and a thread unless the bot answers top-level (DMs)."""

    channel: str
    thread_ts: str | None
    message_ts: str  # the user's message (for the reaction)


def is_dm(event: Mapping[str, Any]) -> bool:
    """Tell whether the event happened in a direct message with the bot."""
    return event.get("channel_type") == "im" or str(event.get("channel", "")).startswith("D")


def mentions(text: str, bot_user_id: str) -> bool:
    """Tell whether Slack text mentions the bot user."""
    return bool(bot_user_id) and f"<@{bot_user_id}" in text


def plain_text(text: str, bot_user_id: str = "") -> str:
    """Turn Slack message markup into the plain text a person meant, without the bot's mention."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(\|[^>]*)?>\s*", "", text)

    def _link(m: re.Match[str]) -> str:
        target, label = m.group(1), m.group(2)
        if target.startswith(("@", "#")):
            return f"{target[0]}{label or target[1:]}"
        if target.startswith("!"):  # <!here>, <!subteam^S1|@team>: keep readable, never re-emit markup
            return f"@{(label or target[1:]).lstrip('@')}"
        return label if label and not target.startswith("mailto:") else target.removeprefix("mailto:")

    return html.unescape(_LINK.sub(_link, text)).strip()


def thread_key(team_id: str, event: Mapping[str, Any]) -> ThreadKey:
    """Key the conversation: a channel thread, a DM thread, or the DM channel itself."""
    channel = str(event.get("channel", ""))
    thread = event.get("thread_ts")
    if not thread:
        thread = channel if is_dm(event) else event.get("ts", "")
    return ThreadKey(PLATFORM, team_id, channel, str(thread))


def reply_target(event: Mapping[str, Any]) -> Target:
    """Answer in the event's thread; a top-level DM message is answered top-level in the DM."""
    ts = str(event.get("ts", ""))
    thread = event.get("thread_ts")
    if not thread and not is_dm(event):
        thread = ts
    return Target(str(event.get("channel", "")), str(thread) if thread else None, ts)


def to_incoming(
    body: Mapping[str, Any], event: Mapping[str, Any], bot_user_id: str, author: Author
) -> Incoming:
    """Build the core's Incoming from an event_callback body and its event."""
    team = str(body.get("team_id") or event.get("team") or "")
    return Incoming(
        key=thread_key(team, event),
        author=author,
        text=plain_text(str(event.get("text", "")), bot_user_id),
        event_id=str(body.get("event_id") or f"{event.get('channel')}:{event.get('ts')}"),
        files=incoming_files(event),
    )


def incoming_files(event: Mapping[str, Any]) -> tuple[IncomingFile, ...]:
    """The files of a message or app_mention event, as the core should see them (untrusted, bounded).

    A file Slack does not let us download (external, deleted, or only a stub in this event) keeps an
    empty ref, so the core can tell the user it was not used rather than drop it silently.
    """
    raw = event.get("files")
    if not isinstance(raw, list):
        return ()
    objects = [f for f in raw[: MAX_FILES_PER_MESSAGE * 2] if isinstance(f, Mapping)]
    return tuple(_one(f) for f in objects[:MAX_FILES_PER_MESSAGE])


def _one(f: Mapping[str, Any]) -> IncomingFile:
    name = f.get("name") or f.get("title") or f.get("id") or "file"
    ref = f.get("url_private_download")
    size = f.get("size")
    mimetype = f.get("mimetype")
    return IncomingFile(
        name=str(name)[:_NAME_MAX],
        ref=ref if isinstance(ref, str) and f.get("mode") != "tombstone" else "",
        size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
        mimetype=mimetype[:200] if isinstance(mimetype, str) else "",
    )


def is_stub_file(f: object) -> bool:
    """Tell whether a file object is a Slack Connect stub (only an id; files.info has the rest)."""
    return isinstance(f, Mapping) and f.get("file_access") == "check_file_info"


def is_from_bot(event: Mapping[str, Any], bot_user_id: str) -> bool:
    """Tell whether a bot (this one or another) wrote the event's message."""
    return (
        bool(event.get("bot_id"))
        or event.get("subtype") == "bot_message"
        or (bool(bot_user_id) and event.get("user") == bot_user_id)
    )


def message_needs_thread_check(event: Mapping[str, Any], bot_user_id: str) -> bool:
    """Decide whether a `message` event may be a follow-up the bot should answer.

    True for people's new messages in DMs or in threads; false for edits/deletes and other
    subtypes, bots, top-level channel chatter, and mentions (the app_mention handler takes those).
    The caller still asks the core whether the bot owns the thread.
    """
    if event.get("subtype") and event.get("subtype") not in _USER_SUBTYPES:
        return False
    if is_from_bot(event, bot_user_id) or not event.get("user"):
        return False
    if is_dm(event):
        return True
    return bool(event.get("thread_ts")) and not mentions(str(event.get("text", "")), bot_user_id)


def parse_command_text(text: str) -> tuple[str, tuple[str, ...]]:
    """Split `/codebot` text into a lower-case subcommand name and its arguments."""
    parts = text.split()
    if not parts:
        return "help", ()
    return parts[0].lower(), tuple(parts[1:])


def parse_thread_ref(arg: str, default_channel: str) -> tuple[str, str] | None:
    """Read a thread from a Slack message link or a bare ts: (channel, thread_ts), or None."""
    arg = arg.strip("<>").split("|", 1)[0]
    link = _THREAD_LINK.search(arg)
    if link:
        channel, secs, micros = link.groups()
        param = _THREAD_TS_PARAM.search(arg)
        return channel, param.group(1) if param else f"{secs}.{micros}"
    if _TS.fullmatch(arg):
        return default_channel, arg
    return None
