"""REST routes of the fake Discord (tests/fakes/discord_fake.py), with Discord's limits and error codes."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.fakes.discord_limits import form_errors, is_empty, message_problems, thread_problems

if TYPE_CHECKING:
    from tests.fakes.discord_fake import FakeDiscord

ISO = "2026-01-01T00:00:00.000000+00:00"
MAX_FILES = 10


@dataclass
class Call:
    method: str
    path: str  # unquoted, without the /api/v10 prefix
    query: dict[str, str]
    headers: dict[str, str]
    json: Any = None
    files: list[tuple[str, str, bytes]] = field(default_factory=list)
    t: float = 0.0


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # discord.py only parses bodies whose Content-Type is exactly "application/json".
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def _error(status: int, code: int, message: str) -> web.Response:
    return _json({"message": message, "code": code}, status)


async def route_rest(fake: FakeDiscord, request: web.Request, call: Call) -> web.StreamResponse:
    """Dispatch one REST call to its handler by method and path."""
    for method, rx, handler in _ROUTES:
        m = rx.fullmatch(call.path)
        if m and method == call.method:
            return await handler(fake, call, *m.groups())
    return _error(404, 0, f"fake has no route {call.method} {call.path}")


async def _me(fake: FakeDiscord, call: Call) -> web.Response:
    if call.headers.get("Authorization") != f"Bot {fake.token}":
        return _error(401, 0, "401: Unauthorized")
    return _json({**fake.bot_user, "verified": True, "mfa_enabled": False, "flags": 0})


async def _app(fake: FakeDiscord, call: Call) -> web.Response:
    return _json(
        {
            "id": str(fake.app_id),
            "name": "codebot",
            "description": "",
            "icon": None,
            "bot_public": False,
            "bot_require_code_grant": False,
            "verify_key": "00",
            "owner": fake.owner,
            "flags": 0,
        }
    )


async def _sync(fake: FakeDiscord, call: Call, *_: str) -> web.Response:
    fake.commands = [
        {**c, "id": str(fake.new_id()), "application_id": str(fake.app_id), "version": "1"}
        for c in call.json or []
    ]
    return _json(fake.commands)


def _invalid(fake: FakeDiscord, call: Call, *, edit: bool = False) -> web.Response | None:
    """400 for a message body Discord refuses; recorded in `fake.refused` so tests can insist on none."""
    body = call.json if call.json is not None else {}
    problems = message_problems(body, len(call.files))
    if problems:
        fake.refused.append((call.method, call.path, problems))
        return _json(form_errors(problems), 400)
    if len(call.files) > MAX_FILES:
        fake.refused.append((call.method, call.path, {"files": "too many attachments"}))
        return _error(400, 50035, "Invalid Form Body (too many attachments)")
    if not edit and is_empty(body, len(call.files)):
        fake.refused.append((call.method, call.path, {"_": "empty message"}))
        return _error(400, 50006, "Cannot send an empty message")
    return None


def _attachments(fake: FakeDiscord, mid: int, call: Call) -> list[dict[str, Any]]:
    return [
        {
            "id": str(fake.new_id()),
            "filename": fn,
            "size": len(data),
            "url": f"http://127.0.0.1:{fake.port}/attachments/{mid}/{fn}",
            "proxy_url": "",
        }
        for _, fn, data in call.files
    ]


def _message(fake: FakeDiscord, channel_id: str, call: Call) -> dict[str, Any]:
    body = call.json or {}
    mid = fake.new_id()
    attachments = _attachments(fake, mid, call)
    msg = {
        "id": str(mid),
        "type": 0,
        "channel_id": channel_id,
        "author": fake.bot_user,
        "content": body.get("content") or "",
        "timestamp": ISO,
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": attachments,
        "embeds": [],
        "pinned": False,
        "flags": 0,
        "components": body.get("components") or [],
    }
    guild_id = fake.guild_of_channel(int(channel_id))
    if guild_id is not None:
        msg["guild_id"] = str(guild_id)
    fake.messages[mid] = msg
    return msg


async def _post_message(fake: FakeDiscord, call: Call, channel_id: str) -> web.Response:
    bad = _invalid(fake, call)
    if bad is not None:
        return bad
    if sum(len(d) for _, _, d in call.files) > fake.upload_limit:
        return _error(413, 40005, "Request entity too large")
    msg = _message(fake, channel_id, call)
    if fake.echo:
        await fake.dispatch("MESSAGE_CREATE", msg)
    return _json(msg)


async def _edit_message(fake: FakeDiscord, call: Call, channel_id: str, message_id: str) -> web.Response:
    bad = _invalid(fake, call, edit=True)
    if bad is not None:
        return bad
    msg = fake.messages.get(int(message_id))
    if msg is None:
        return _error(404, 10008, "Unknown Message")
    body = call.json or {}
    if sum(len(d) for _, _, d in call.files) > fake.upload_limit:
        return _error(413, 40005, "Request entity too large")
    attachments = msg["attachments"]
    if "attachments" in body:  # the attachments to keep (by id) and the new files (by index)
        kept = {str(a.get("id")) for a in body["attachments"] if isinstance(a, dict)}
        attachments = [a for a in attachments if a["id"] in kept]
    attachments = attachments + _attachments(fake, int(message_id), call)
    if len(attachments) > MAX_FILES:
        fake.refused.append((call.method, call.path, {"files": "too many attachments"}))
        return _error(400, 50035, "Invalid Form Body (too many attachments)")
    content = body.get("content", msg["content"])
    msg.update(content=content, edited_timestamp=ISO, attachments=attachments)
    if "components" in body:  # `view=None` sends an empty list: the buttons are removed
        msg["components"] = body["components"] or []
    return _json(msg)


async def _delete_message(fake: FakeDiscord, call: Call, channel_id: str, message_id: str) -> web.Response:
    msg = fake.messages.get(int(message_id))
    if msg is None or msg["channel_id"] != channel_id:
        return _error(404, 10008, "Unknown Message")
    fake.deleted[int(message_id)] = fake.messages.pop(int(message_id))
    return web.Response(status=204)


async def _create_thread(fake: FakeDiscord, call: Call, channel_id: str, message_id: str) -> web.Response:
    tid = int(message_id)  # a thread started from a message has the message's id
    if tid in fake.threads:
        return _error(400, 160004, "A thread has already been created for this message")
    problems = thread_problems(call.json)
    if problems:
        fake.refused.append((call.method, call.path, problems))
        return _json(form_errors(problems), 400)
    body = call.json or {}
    archive = body.get("auto_archive_duration", 1440)
    guild_id = fake.guild_of_channel(int(channel_id)) or fake.guild_id
    thread = thread_object(guild_id, tid, int(channel_id), fake.bot_user["id"], body.get("name", ""), archive)
    fake.threads[tid] = thread
    await fake.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
    return _json(thread, 201)


def thread_object(
    guild_id: int, tid: int, parent_id: int, owner_id: str, name: str, archive_min: int = 1440
) -> dict[str, Any]:
    """A public thread (type 11) with the keys discord.py requires."""
    meta = {
        "archived": False,
        "locked": False,
        "archive_timestamp": ISO,
        "auto_archive_duration": archive_min,
    }
    return {
        "id": str(tid),
        "type": 11,
        "guild_id": str(guild_id),
        "parent_id": str(parent_id),
        "owner_id": owner_id,
        "name": name,
        "message_count": 0,
        "member_count": 1,
        "rate_limit_per_user": 0,
        "flags": 0,
        "thread_metadata": meta,
    }


def channel_object(guild_id: int, cid: int, name: str = "general") -> dict[str, Any]:
    """A guild text channel (type 0)."""
    return {"id": str(cid), "type": 0, "name": name, "position": 0, "guild_id": str(guild_id),
            "permission_overwrites": [], "nsfw": False, "parent_id": None}  # fmt: skip


def guild_object(
    fake: FakeDiscord, roles: list[tuple[int, str, int]], guild_id: int, channel_id: int
) -> dict[str, Any]:
    """GUILD_CREATE data: one text channel, the bot as member, roles as (id, name, permission bits)."""
    threads = [t for t in fake.threads.values() if t["guild_id"] == str(guild_id)]
    role = {"position": 0, "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0}
    return {
        "id": str(guild_id), "name": "test guild", "icon": None, "owner_id": fake.owner["id"],
        "unavailable": False, "member_count": 2, "features": [], "emojis": [], "stickers": [],
        "threads": threads, "voice_states": [], "presences": [], "stage_instances": [],
        "guild_scheduled_events": [], "soundboard_sounds": [], "joined_at": ISO,
        "roles": [{**role, "id": str(i), "name": n, "permissions": str(p)} for i, n, p in roles],
        "channels": [channel_object(guild_id, channel_id)], "members": [fake.member(fake.bot_user)],
    }  # fmt: skip


async def _no_content(fake: FakeDiscord, call: Call, *_: str) -> web.Response:
    return web.Response(status=204)


async def _get_channel(fake: FakeDiscord, call: Call, channel_id: str) -> web.Response:
    thread = fake.threads.get(int(channel_id))
    if thread is not None:
        return _json(thread)
    if int(channel_id) in fake.guilds.values():
        return _json(fake._channel(int(channel_id)))
    return _error(404, 10003, "Unknown Channel")


async def _callback(fake: FakeDiscord, call: Call, interaction_id: str, token: str) -> web.Response:
    created, answered = fake._interactions.get(token, (0.0, True))
    if time.monotonic() - created > fake.deadline_s:
        return _error(404, 10062, "Unknown interaction")
    if answered:
        return _error(400, 40060, "Interaction has already been acknowledged.")
    body = call.json or {}
    data = body.get("data") or {}
    if body.get("type") == 4:  # a message response: the same rules as any message
        problems = message_problems(data)
        if problems:
            fake.refused.append((call.method, call.path, problems))
            return _json(form_errors(problems), 400)
    fake._interactions[token] = (created, True)
    msg = {**_message(fake, "0", call), "content": data.get("content", ""), "flags": data.get("flags", 0)}
    # The response is a message in the interaction's channel; buttons on it can be pressed (ephemeral too).
    channel = fake.interaction_channels.get(token, "0")
    fake.messages[int(msg["id"])] = {**msg, "channel_id": channel, "components": data.get("components") or []}
    loading = body.get("type") == 5
    return _json(
        {
            "interaction": {
                "id": interaction_id,
                "type": 2,
                "response_message_id": msg["id"],
                "response_message_loading": loading,
                "response_message_ephemeral": True,
            },
            "resource": {"type": body.get("type"), "message": msg},
        }
    )


async def _followup(fake: FakeDiscord, call: Call, app_id: str, token: str) -> web.Response:
    bad = _invalid(fake, call)
    return bad if bad is not None else _json(_message(fake, "0", call))


async def _edit_original(fake: FakeDiscord, call: Call, app_id: str, token: str) -> web.Response:
    bad = _invalid(fake, call, edit=True)
    return bad if bad is not None else _json(_message(fake, "0", call))


_ID = r"(\d+)"
_ROUTES = [
    ("GET", re.compile(r"/users/@me"), _me),
    ("GET", re.compile(r"/oauth2/applications/@me"), _app),
    ("PUT", re.compile(rf"/applications/{_ID}/commands"), _sync),
    ("PUT", re.compile(rf"/applications/{_ID}/guilds/{_ID}/commands"), _sync),
    ("POST", re.compile(rf"/channels/{_ID}/messages"), _post_message),
    ("PATCH", re.compile(rf"/channels/{_ID}/messages/{_ID}"), _edit_message),
    ("DELETE", re.compile(rf"/channels/{_ID}/messages/{_ID}"), _delete_message),
    ("POST", re.compile(rf"/channels/{_ID}/messages/{_ID}/threads"), _create_thread),
    ("PUT", re.compile(rf"/channels/{_ID}/messages/{_ID}/reactions/([^/]+)/@me"), _no_content),
    ("DELETE", re.compile(rf"/channels/{_ID}/messages/{_ID}/reactions/([^/]+)/@me"), _no_content),
    ("POST", re.compile(rf"/channels/{_ID}/typing"), _no_content),
    ("GET", re.compile(rf"/channels/{_ID}"), _get_channel),
    ("POST", re.compile(rf"/interactions/{_ID}/([^/]+)/callback"), _callback),
    ("POST", re.compile(rf"/webhooks/{_ID}/([^/]+)"), _followup),
    ("PATCH", re.compile(rf"/webhooks/{_ID}/([^/]+)/messages/@original"), _edit_original),
]
