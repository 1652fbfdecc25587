"""A fake Discord (REST + gateway) on 127.0.0.1 that a real, unpatched discord.py client talks to.

It speaks just enough of the protocol (see shared/notes/discord.md): login, command sync, the gateway
handshake, RESUME, message/thread/reaction/typing REST calls (JSON and multipart), interaction callbacks
with a deadline, webhook follow-ups, 400/50035 for content over 2000 chars and 429s with the headers
discord.py needs to retry. Every REST call is recorded; tests wait on them with `wait_for_call`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import WSMsgType, web

from tests.fakes.discord_rest import (
    ISO,
    Call,
    _error,
    _json,
    channel_object,
    guild_object,
    route_rest,
    thread_object,
)
from tests.fakes.discord_shards import ShardedGateway

BASIC_PERMS = 0x400 | 0x800 | 0x10000 | 0x40 | 0x8000 | 0x800000000 | 0x4000000000 | 0x80000000
MANAGE_GUILD = 0x20
VIEW_CHANNEL = 0x400

CALL_KEY = web.RequestKey("call", Call)
_CDN_KEY = b"fake-cdn-signing-key"
CDN_GONE = "This content is no longer available."


@dataclass(frozen=True)
class HostedAttachment:
    """A file someone attached; how the CDN serves it can be made to misbehave for tests."""

    data: bytes
    content_type: str
    chunked: bool = False  # no Content-Length
    redirect_to: str | None = None  # answer 302 to this URL instead of the bytes


def _cdn_signature(path: str, ex: str) -> str:
    return hmac.new(_CDN_KEY, f"{path}:{ex}".encode(), hashlib.sha256).hexdigest()


class FakeDiscord(ShardedGateway):
    """Start with `await fake.start()`; point the client at `api_base` and `gateway_url`."""

    def __init__(
        self,
        *,
        interaction_deadline_s: float = 3.0,
        echo: bool = True,
        upload_limit: int = 10 << 20,
        token: str = "fake-discord-token",
    ):
        self.token = token  # the only bot token login accepts
        self.deadline_s = interaction_deadline_s
        self.echo = echo  # real Discord sends the bot's own messages back as MESSAGE_CREATE
        self.upload_limit = upload_limit
        self._ids = itertools.count(1_200_000_000_000_000_000)
        self.app_id = self.new_id()
        self.guild_id = self.new_id()
        self.channel_id = self.new_id()
        self.manager_role = self.new_id()
        self.bot_user = self.user("codebot", bot=True)
        self.owner = self.user("owner")
        self.calls: list[Call] = []
        self.refused: list[tuple[str, str, dict[str, str]]] = []  # (method, path, problems) answered 400
        self.messages: dict[int, dict[str, Any]] = {}
        self.deleted: dict[int, dict[str, Any]] = {}  # messages the bot deleted
        self.threads: dict[int, dict[str, Any]] = {}
        self.members: dict[int, dict[str, Any]] = {}
        self.commands: list[dict[str, Any]] = []
        self.identifies = 0
        self.identify_payload: dict[str, Any] = {}
        self.resumes = 0
        self._init_shards()
        self._interactions: dict[str, tuple[float, bool]] = {}
        self.interaction_channels: dict[str, str] = {}  # token -> channel id the interaction came from
        self._failures: list[tuple[str, re.Pattern[str], int, float]] = []
        self._changed = asyncio.Condition()
        self._ws: web.WebSocketResponse | None = None
        self._ready = asyncio.Event()
        self._seq = 0
        self._replay: list[tuple[str, dict[str, Any]]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.attachments: dict[int, HostedAttachment] = {}  # files people attached, by attachment id
        self.cdn_requests: list[Call] = []  # GETs on the CDN route (path, query, headers)

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(middlewares=[self._record], client_max_size=64 << 20)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        app.router.add_get("/attachments/{cid}/{aid}/{name}", self._cdn)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    # ---- builders --------------------------------------------------------------------------------

    def new_id(self) -> int:
        return next(self._ids)

    def user(self, name: str, *, bot: bool = False) -> dict[str, Any]:
        uid = str(self.new_id())
        return {
            "id": uid,
            "username": name,
            "discriminator": "0",
            "global_name": name,
            "avatar": None,
            "bot": bot,
            "public_flags": 0,
        }

    def member(self, user: dict[str, Any], *, manager: bool = False) -> dict[str, Any]:
        roles = [str(self.manager_role)] if manager else []
        m = {"user": user, "roles": roles, "joined_at": ISO, "deaf": False, "mute": False, "flags": 0}
        self.members[int(user["id"])] = m
        return m

    def message(
        self,
        content: str,
        author: dict[str, Any],
        *,
        channel_id: int | None = None,
        dm: bool = False,
        mention_bot: bool = False,
        manager: bool = False,
        message_id: int | None = None,
        attachments: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A MESSAGE_CREATE payload from a user; `mention_bot` puts the bot in `mentions`."""
        msg: dict[str, Any] = {
            "id": str(message_id or self.new_id()),
            "type": 0,
            "channel_id": str(channel_id or self.channel_id),
            "author": author,
            "content": content,
            "timestamp": ISO,
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [self.bot_user] if mention_bot else [],
            "mention_roles": [],
            "attachments": list(attachments or []),
            "embeds": [],
            "pinned": False,
            "flags": 0,
            "components": [],
        }
        if not dm:
            msg["guild_id"] = str(self.guild_of_channel(int(msg["channel_id"])) or self.guild_id)
            member = dict(self.member(author, manager=manager))
            member.pop("user")
            msg["member"] = member
        return msg

    def _channel(self, cid: int) -> dict[str, Any]:
        return channel_object(self.guild_of_channel(cid) or self.guild_id, cid)

    def _guild(self, guild_id: int | None = None) -> dict[str, Any]:
        gid = guild_id or self.guild_id
        return guild_object(
            self,
            roles=[
                (gid, "@everyone", BASIC_PERMS),
                (self.manager_role, "manager", BASIC_PERMS | MANAGE_GUILD),
            ],
            guild_id=gid,
            channel_id=self.guilds[gid],
        )

    # ---- gateway ---------------------------------------------------------------------------------

    async def dispatch(self, event: str, data: dict[str, Any], *, shard: int | None = None) -> None:
        """Send one dispatch to the connected client (sharded: to the shard of the event's guild)."""
        if self.shard_count is not None:
            await self._dispatch_sharded(event, data, shard)
            return
        async with asyncio.timeout(5):
            await self._ready.wait()
        assert self._ws is not None
        self._seq += 1
        await self._ws.send_json({"op": 0, "t": event, "s": self._seq, "d": data})

    async def send_message(self, content: str, author: dict[str, Any], **kw: Any) -> dict[str, Any]:
        msg = self.message(content, author, **kw)
        await self.dispatch("MESSAGE_CREATE", msg)
        return msg

    async def add_thread(self, name: str, owner: dict[str, Any]) -> int:
        """A public thread someone else started in the text channel; returns its id."""
        tid = self.new_id()
        self.threads[tid] = thread_object(self.guild_id, tid, self.channel_id, owner["id"], name)
        await self.dispatch("THREAD_CREATE", {**self.threads[tid], "newly_created": True})
        return tid

    async def reconnect(self, replay: list[tuple[str, dict[str, Any]]]) -> None:
        """Ask the client to reconnect (op 7); after its RESUME, replay these events (a resume replay)."""
        self._replay = list(replay)
        self._ready.clear()
        assert self._ws is not None
        await self._ws.send_json({"op": 7, "d": None, "s": None, "t": None})
        async with asyncio.timeout(10):
            await self._ready.wait()

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws = ws
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            if frame["op"] == 1:
                await ws.send_json({"op": 11, "d": None, "s": None, "t": None})
            elif frame["op"] == 2:
                self.identify_payload = frame["d"]
                if "shard" not in frame["d"]:
                    await self._identified(ws)
                elif self._bad_shard(frame["d"]["shard"]):
                    self.refused_shards.append(frame["d"]["shard"])
                    await ws.close(code=4010, message=b"Invalid shard")
                else:
                    await self._identified_shard(ws, *frame["d"]["shard"])
            elif frame["op"] == 6:
                await self._resumed(ws)
        return ws

    async def _identified(self, ws: web.WebSocketResponse) -> None:
        self.identifies += 1
        ready = {
            "v": 10,
            "user": self.bot_user,
            "guilds": [{"id": str(gid), "unavailable": True} for gid in self.guilds],
            "session_id": "fake-session",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.app_id), "flags": 0},
        }
        self._ready.set()
        await self.dispatch("READY", ready)
        for gid in self.guilds:
            await self.dispatch("GUILD_CREATE", self._guild(gid))

    async def _resumed(self, ws: web.WebSocketResponse) -> None:
        self.resumes += 1
        self._ready.set()
        replay, self._replay = self._replay, []
        for event, data in replay:
            await self.dispatch(event, data)
        await self.dispatch("RESUMED", {})

    # ---- interactions ----------------------------------------------------------------------------

    async def slash(
        self,
        group: str,
        sub: str,
        options: dict[str, Any] | None = None,
        *,
        user: dict[str, Any],
        manager: bool = False,
        channel_id: int | None = None,
        dm: bool = False,
        permissions: int | None = None,
    ) -> dict[str, Any]:
        """Dispatch INTERACTION_CREATE for `/group sub option:value...`; returns the payload.

        `permissions` are the member's resolved permissions in that channel (Discord computes them with
        the channel's overwrites); by default the basic ones, plus Manage Server for a manager.
        """
        token = f"tok-{self.new_id()}"
        opts = [{"name": k, "type": 3, "value": v} for k, v in (options or {}).items()]
        cid = str(channel_id or self.channel_id)
        perms = str(
            permissions if permissions is not None else BASIC_PERMS | (MANAGE_GUILD if manager else 0)
        )
        d: dict[str, Any] = {
            "id": str(self.new_id()),
            "application_id": str(self.app_id),
            "type": 2,
            "token": token,
            "version": 1,
            "channel_id": cid,
            "app_permissions": str(BASIC_PERMS),
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": self.upload_limit,
            "context": 1 if dm else 0,
            "data": {
                "id": str(self.new_id()),
                "name": group,
                "type": 1,
                "options": [{"name": sub, "type": 1, "options": opts}],
            },
        }
        if dm:
            d.update(user=user, channel={"id": cid, "type": 1, "recipients": [user]})
        else:
            thread = self.threads.get(int(cid))
            d.update(
                guild_id=str(self.guild_id), guild_locale="en-US", channel=thread or self._channel(int(cid))
            )
            d["member"] = {**self.member(user, manager=manager), "permissions": perms}
        self._interactions[token] = (time.monotonic(), False)
        self.interaction_channels[token] = cid
        await self.dispatch("INTERACTION_CREATE", d)
        return d

    def buttons(self, message_id: int | str) -> list[str]:
        """custom_ids of the buttons a message shows now."""
        msg = self.messages.get(int(message_id)) or {}
        return [
            c.get("custom_id", "") for row in msg.get("components", []) for c in row.get("components", [])
        ]

    async def press(
        self,
        message_id: int | str,
        custom_id: str,
        *,
        user: dict[str, Any],
        manager: bool = False,
        forged: bool = False,
    ) -> dict[str, Any]:
        """Dispatch a button press (INTERACTION_CREATE type 3) on a message the bot posted.

        A client can only press a button the message shows; `forged` sends any custom_id, as a
        crafted request could.
        """
        msg = self.messages[int(message_id)]
        if not forged:
            assert custom_id in self.buttons(message_id), f"{custom_id!r} is not on message {message_id}"
        token = f"tok-{self.new_id()}"
        cid = msg["channel_id"]
        d: dict[str, Any] = {
            "id": str(self.new_id()),
            "application_id": str(self.app_id),
            "type": 3,
            "token": token,
            "version": 1,
            "channel_id": cid,
            "app_permissions": str(BASIC_PERMS),
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": self.upload_limit,
            "context": 0,
            "message": msg,
            "data": {"custom_id": custom_id, "component_type": 2},
            "guild_id": str(self.guild_id),
            "guild_locale": "en-US",
            "channel": self.threads.get(int(cid)) or self._channel(int(cid)),
        }
        perms = BASIC_PERMS | (MANAGE_GUILD if manager else 0)
        d["member"] = {**self.member(user, manager=manager), "permissions": str(perms)}
        self._interactions[token] = (time.monotonic(), False)
        self.interaction_channels[token] = cid
        await self.dispatch("INTERACTION_CREATE", d)
        return d

    # ---- recording and failure injection ---------------------------------------------------------

    def fail_next(self, method: str, path_regex: str, status: int = 429, retry_after: float = 0.25) -> None:
        """Make the next matching REST call fail once (429s carry Via, bucket headers and a JSON body)."""
        self._failures.append((method, re.compile(path_regex), status, retry_after))

    def live(self, channel_id: int | str) -> list[dict[str, Any]]:
        """The messages a channel or thread shows now (edited in place, deleted ones gone), oldest first."""
        return [m for _, m in sorted(self.messages.items()) if m["channel_id"] == str(channel_id)]

    def calls_to(self, method: str, path_regex: str) -> list[Call]:
        rx = re.compile(path_regex)
        return [c for c in self.calls if c.method == method and rx.fullmatch(c.path)]

    async def wait_until(self, cond: Callable[[], bool], within_s: float = 10.0) -> None:
        """Wait until `cond()` holds; it is re-checked after every recorded call."""
        async with asyncio.timeout(within_s), self._changed:
            await self._changed.wait_for(cond)

    async def wait_for_call(self, pred: Callable[[Call], bool], within_s: float = 10.0) -> Call:
        """Wait for the first recorded call that satisfies `pred` (each call is checked once)."""
        seen = 0
        async with asyncio.timeout(within_s), self._changed:
            while True:
                for call in self.calls[seen:]:
                    if pred(call):
                        return call
                seen = len(self.calls)
                await self._changed.wait()

    async def wait_for(
        self, method: str, path_regex: str, count: int = 1, within_s: float = 10.0
    ) -> list[Call]:
        """Wait until at least `count` calls match; return all matching calls."""
        await self.wait_until(lambda: len(self.calls_to(method, path_regex)) >= count, within_s)
        return self.calls_to(method, path_regex)

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith("/api/v10/"):
            return await handler(request)
        call = Call(
            request.method, request.path[len("/api/v10") :], dict(request.query), dict(request.headers)
        )
        call.t = time.monotonic()
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:  # type: ignore[union-attr]
                if part.name == "payload_json":
                    call.json = json.loads(await part.text())  # type: ignore[union-attr]
                else:
                    call.files.append((part.name or "", part.filename or "", bytes(await part.read())))  # type: ignore[union-attr]
        elif request.can_read_body:
            raw = await request.read()
            call.json = json.loads(raw) if raw else None
        request[CALL_KEY] = call
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()
        failure = self._take_failure(call)
        return failure if failure is not None else await handler(request)

    def _take_failure(self, call: Call) -> web.Response | None:
        for i, (method, rx, status, retry_after) in enumerate(self._failures):
            if method == call.method and rx.fullmatch(call.path):
                del self._failures[i]
                if status != 429:
                    return _error(status, 0, "injected failure")
                headers = {
                    "Via": "1.1 google",
                    "X-RateLimit-Limit": "5",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset-After": str(retry_after),
                    "X-RateLimit-Bucket": "fakebucket",
                    "X-RateLimit-Scope": "user",
                }
                body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": False}
                return _json(body, 429, headers)
        return None

    # ---- REST ------------------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        return await route_rest(self, request, request[CALL_KEY])

    # ---- attachments and the CDN ------------------------------------------------------------------

    @property
    def cdn_base(self) -> str:
        """The fake's CDN origin (stands in for https://cdn.discordapp.com)."""
        return f"http://127.0.0.1:{self.port}"

    def attachment(
        self,
        filename: str,
        data: bytes,
        content_type: str | None = "text/csv",
        *,
        channel_id: int | None = None,
        declared_size: int | None = None,
        chunked: bool = False,
        redirect_to: str | None = None,
    ) -> dict[str, Any]:
        """Host a file on the CDN and return its attachment object as Discord puts it in a message."""
        aid = self.new_id()
        self.attachments[aid] = HostedAttachment(
            data, content_type or "application/octet-stream", chunked, redirect_to
        )
        path = f"/attachments/{channel_id or self.channel_id}/{aid}/{quote(filename, safe='')}"
        ex = format(int(time.time()) + 86400, "x")  # signed links expire, as Discord's do since 2024
        query = f"?ex={ex}&is={format(int(time.time()), 'x')}&hm={_cdn_signature(path, ex)}&"
        obj: dict[str, Any] = {
            "id": str(aid),
            "filename": filename,
            "size": len(data) if declared_size is None else declared_size,
            "url": f"{self.cdn_base}{path}{query}",
            "proxy_url": f"{self.cdn_base}{path}{query}",
        }
        if content_type is not None:
            obj["content_type"] = content_type
        return obj

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        call = Call(request.method, request.path, dict(request.query), dict(request.headers))
        self.cdn_requests.append(call)
        hosted = self.attachments.get(int(request.match_info["aid"]))
        ex, hm = request.query.get("ex", ""), request.query.get("hm", "")
        if hosted is None or not hmac.compare_digest(hm, _cdn_signature(request.raw_path.split("?")[0], ex)):
            return web.Response(status=404, text=CDN_GONE)  # what the CDN says to unsigned links
        if hosted.redirect_to:
            raise web.HTTPFound(hosted.redirect_to)
        if not hosted.chunked:
            return web.Response(body=hosted.data, headers={"Content-Type": hosted.content_type})
        resp = web.StreamResponse(headers={"Content-Type": hosted.content_type})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(hosted.data), 64 * 1024):
            await resp.write(hosted.data[i : i + 64 * 1024])  # raises once the client hangs up
        await resp.write_eof()
        return resp
