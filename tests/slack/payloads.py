"""Slack payloads and request signing for the adapter tests (shapes per notes/slack.md §2)."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from typing import Any
from urllib.parse import urlencode

SECRET = "test-signing-secret"
TEAM = "T111"
BOT = "UBOT"
_ids = itertools.count(1)
_ts = itertools.count(1)


def new_ts() -> str:
    return f"1700000000.{next(_ts):06d}"


def sign(body: str, secret: str = SECRET, ts: int | None = None) -> dict[str, str]:
    """Headers Slack sends with a request: the timestamp and the v0 HMAC of the exact body."""
    stamp = str(int(time.time()) if ts is None else ts)
    mac = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={mac}"}


def envelope(event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    """Wrap an event in the event_callback body Slack posts."""
    return {
        "token": "legacy",
        "team_id": TEAM,
        "api_app_id": "A1",
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_ids):06d}",
        "event_time": 1700000000,
        "authorizations": [{"team_id": TEAM, "user_id": BOT, "is_bot": True, "is_enterprise_install": False}],
        "event": event,
    }


def mention(
    text: str,
    *,
    user: str = "U123",
    channel: str = "C1",
    ts: str | None = None,
    thread_ts: str | None = None,
    event_id: str | None = None,
    files: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An app_mention event_callback body; the text gets the bot's mention in front.

    `files`: file objects (FakeSlack.share_file) attached to the mention, as Slack sends them.
    """
    ts = ts or new_ts()
    event = {
        "type": "app_mention",
        "user": user,
        "text": f"<@{BOT}> {text}",
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    if files is not None:
        event["files"] = files
    return envelope(event, event_id)


def message(
    text: str,
    *,
    user: str | None = "U123",
    channel: str = "C1",
    thread_ts: str | None = None,
    channel_type: str = "channel",
    **extra: Any,
) -> dict[str, Any]:
    """A `message` event_callback body (a follow-up, a DM, or the bot's own echo with extra fields)."""
    ts = new_ts()
    event: dict[str, Any] = {
        "type": "message",
        "text": text,
        "ts": ts,
        "channel": channel,
        "channel_type": channel_type,
        "event_ts": ts,
        **extra,
    }
    if user:
        event["user"] = user
    if thread_ts:
        event["thread_ts"] = thread_ts
    return envelope(event)


def command_form(text: str, *, user: str = "U123", channel: str = "C1", response_url: str = "") -> str:
    """The urlencoded body of a `/codebot` slash command."""
    return urlencode(
        {
            "token": "legacy",
            "team_id": TEAM,
            "team_domain": "fake",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/codebot",
            "text": text,
            "api_app_id": "A1",
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": "1.2.3",
        }
    )


def dumps(body: dict[str, Any]) -> str:
    return json.dumps(body)
