"""A fake Slack (Web API, file uploads, response_url, Socket Mode) on 127.0.0.1 for tests and benches.

It speaks the wire formats slack-sdk uses (see notes/slack.md §1, §5): form, JSON and GET calls under
/api/<method>, raw upload bodies at the upload URL, a Socket Mode WebSocket at /link/. Every call is
recorded; tests poll `wait_for` instead of sleeping.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

from aiohttp import WSMsgType, web

from tests.fakes.slack_interactive import Interactive
from tests.fakes.slack_limits import message_error, view_error
from tests.fakes.slack_threads import SlackThreads

T = TypeVar("T")
GRANTED_SCOPES = [
    "app_mentions:read",
    "chat:write",
    "reactions:write",
    "channels:history",
    "groups:history",
    "im:history",
    "users:read",
    "channels:read",
    "groups:read",
    "files:write",
    "files:read",
    "commands",
]


@dataclass(frozen=True)
class Call:
    """One Web API request the fake received."""

    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class HostedFile:
    """A file a person shared; how the file host serves it can be made to misbehave for tests."""

    data: bytes
    mimetype: str
    chunked: bool = False  # no Content-Length, as a streaming server sends it
    redirect_to: str | None = None  # answer 302 to this URL instead of the bytes


@dataclass(frozen=True)
class Failure:
    status: int
    retry_after: float | None
    error: str


class FakeSlack(SlackThreads):
    """In-process fake of Slack. Use as `async with FakeSlack() as slack:`."""

    def __init__(
        self,
        *,
        bot_user_id: str = "UBOT",
        team_id: str = "T111",
        admins: set[str] | None = None,
        bot_token: str = "xoxb-test-token",
    ):
        self.bot_token = bot_token  # the only token the file host serves files to
        # Granted scopes, sent as x-oauth-scopes on every Web API answer as Slack does.
        self.scopes: list[str] = list(GRANTED_SCOPES)
        self.hosted: dict[str, HostedFile] = {}  # files people shared, by file id
        self.file_requests: list[Call] = []  # GETs of shared files (method = file id)
        self.file_objects: dict[str, dict[str, Any]] = {}  # what files.info answers, by file id
        self.bot_user_id = bot_user_id
        self.team_id = team_id
        self.admins: set[str] = set(admins or ())
        self.names: dict[str, str] = {}
        self.calls: list[Call] = []
        self.uploads: dict[str, bytes] = {}
        self.files: list[dict[str, Any]] = []  # completed uploads: id, title, filename, channel, thread_ts
        self.responses: list[dict[str, Any]] = []  # bodies POSTed to response_url
        self.ws_received: list[dict[str, Any]] = []
        self.ws_connections = 0
        self.fail_upload = False
        # conversations.members: channels the bot can see and who is in them; others are channel_not_found
        self.channel_members: dict[str, list[str]] = {}
        self.members_page_size = 1000  # Slack pages member lists; tests shrink it to exercise cursors
        self.refused: list[tuple[str, str, list[str]]] = []  # (method, error, details) Slack would refuse
        self.views: list[dict[str, Any]] = []  # modals opened with views.open
        self.interactive = Interactive(self)  # block_actions payloads, the way Slack sends them
        self._failures: dict[str, list[Failure]] = {}
        self._ts = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._pending_names: dict[str, str] = {}
        self._sockets: list[web.WebSocketResponse] = []
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._threads_init()

    # ---- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> FakeSlack:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/{fid}", self._upload)
        app.router.add_post("/respond/{rid}", self._respond)
        app.router.add_get("/link/", self._link)
        app.router.add_get("/files-pri/{team_file}/download/{name}", self._file_download)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, rid: str = "r1") -> str:
        """A response_url to put in slash-command payloads."""
        return f"http://127.0.0.1:{self.port}/respond/{rid}"

    # ---- switches and queries ----------------------------------------------------------------

    def fail_next(
        self, method: str, status: int = 429, retry_after: float | None = 1, error: str = "ratelimited"
    ):
        """Make the next call to `method` fail with this HTTP status (429 carries Retry-After)."""
        self._failures.setdefault(method, []).append(Failure(status, retry_after, error))

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def thread_posts(self, channel: str, thread_ts: str | None) -> list[Call]:
        """chat.postMessage calls into one thread (thread_ts None: top level), in order."""
        return [
            c
            for c in self.calls_to("chat.postMessage")
            if c.params.get("channel") == channel and c.params.get("thread_ts") == thread_ts
        ]

    async def wait_for(self, pred: Callable[[], T], timeout_s: float = 10.0) -> T:
        """Poll `pred` every 10 ms until it returns something truthy; fail the test on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = pred()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"condition not met within {timeout_s}s; calls: {[c.method for c in self.calls]}"
                )
            await asyncio.sleep(0.01)

    # ---- Web API -----------------------------------------------------------------------------

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            params.update(await request.post())
        return params

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._params(request)
        self.calls.append(Call(method, params, dict(request.headers)))
        queued = self._failures.get(method)
        if queued:
            failure = queued.pop(0)
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
            return web.json_response(
                {"ok": False, "error": failure.error}, status=failure.status, headers=headers
            )
        handler = getattr(self, "m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"}, status=404)
        return web.json_response(handler(params), headers={"x-oauth-scopes": ",".join(self.scopes)})

    def next_ts(self) -> str:
        return f"1800000000.{next(self._ts):06d}"

    def m_auth_test(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake.slack/",
            "team": "Fake",
            "user": "codebot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": "BBOT",
        }

    def _refuse(self, method: str, p: dict[str, Any]) -> dict[str, Any] | None:
        problem = message_error(p)
        if problem is None:
            return None
        error, details = problem
        self.refused.append((method, error, details))
        return {"ok": False, "error": error, "errors": details}

    def m_chat_postMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        if (refused := self._refuse("chat.postMessage", p)) is not None:
            return refused
        ts = self.next_ts()
        self._store_post(p, ts)
        msg = {"text": p.get("text"), "ts": ts, "thread_ts": p.get("thread_ts"), "bot_id": "BBOT"}
        return {"ok": True, "channel": p.get("channel"), "ts": ts, "message": msg}

    def m_chat_update(self, p: dict[str, Any]) -> dict[str, Any]:
        if (refused := self._refuse("chat.update", p)) is not None:
            return refused
        if not self._store_update(p) and (p.get("channel"), p.get("ts")) in self.messages:
            return {"ok": False, "error": "message_not_found"}  # deleted
        return {"ok": True, "channel": p.get("channel"), "ts": p.get("ts"), "text": p.get("text", "")}

    def m_views_open(self, p: dict[str, Any]) -> dict[str, Any]:
        if not self.interactive.use_trigger(str(p.get("trigger_id", ""))):
            return {"ok": False, "error": "invalid_trigger_id"}
        problem = view_error(p.get("view"))
        if problem is not None:
            self.refused.append(("views.open", *problem))
            return {"ok": False, "error": problem[0], "errors": problem[1]}
        view = p["view"] if isinstance(p["view"], dict) else json.loads(p["view"])
        self.views.append(view)
        return {"ok": True, "view": {"id": f"V{len(self.views)}", **view}}

    def m_reactions_add(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True}

    def reactions(self, name: str, method: str = "reactions.add") -> list[Call]:
        """Reaction calls for one emoji name, in order."""
        return [c for c in self.calls_to(method) if c.params.get("name") == name]

    def m_reactions_remove(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True}

    def m_users_info(self, p: dict[str, Any]) -> dict[str, Any]:
        uid = str(p.get("user", ""))
        admin = uid in self.admins
        user = {
            "id": uid,
            "name": self.names.get(uid, uid.lower()),
            "real_name": self.names.get(uid, ""),
            "is_admin": admin,
            "is_owner": admin,
            "is_primary_owner": False,
            "is_bot": False,
            "deleted": False,
            "profile": {"display_name": self.names.get(uid, "")},
        }
        return {"ok": True, "user": user}

    def m_conversations_members(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = str(p.get("channel") or "")
        if not channel:
            return {"ok": False, "error": "invalid_arguments"}
        if channel not in self.channel_members:  # unknown, or private and the bot is not in it
            return {"ok": False, "error": "channel_not_found"}
        try:
            limit = int(p.get("limit") or 100)
            start = int(p.get("cursor") or 0)
        except ValueError:
            return {"ok": False, "error": "invalid_cursor"}
        if not 1 <= limit <= 1000:
            return {"ok": False, "error": "invalid_limit"}
        members = self.channel_members[channel]
        end = start + min(limit, self.members_page_size)
        cursor = str(end) if end < len(members) else ""
        return {"ok": True, "members": members[start:end], "response_metadata": {"next_cursor": cursor}}

    def m_files_getUploadURLExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        fid = f"F{next(self._file_ids):04d}"
        self._pending_names[fid] = str(p.get("filename", ""))
        return {"ok": True, "file_id": fid, "upload_url": f"http://127.0.0.1:{self.port}/upload/{fid}"}

    def m_files_completeUploadExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        done = []
        for f in json.loads(p["files"]):
            record = {
                "id": f["id"],
                "title": f.get("title"),
                "filename": self._pending_names.get(f["id"]),
                "channel": p.get("channel_id"),
                "thread_ts": p.get("thread_ts"),
            }
            self.files.append(record)
            self._store_file(p.get("channel_id"), p.get("thread_ts"), f["id"])
            done.append({"id": f["id"], "title": f.get("title")})
        return {"ok": True, "files": done}

    def m_apps_connections_open(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/link/?ticket=t{len(self.calls)}"}

    async def _upload(self, request: web.Request) -> web.Response:
        if self.fail_upload:
            return web.Response(status=500, text="upload failed")
        self.uploads[request.match_info["fid"]] = await request.read()
        return web.Response(text="OK")

    async def _respond(self, request: web.Request) -> web.Response:
        body = await request.json()
        problem = message_error(body)
        if problem is not None:  # response_url answers 400 with a plain-text error, as Slack's does
            self.refused.append(("response_url", *problem))
            return web.Response(status=400, text=problem[0])
        self.responses.append(body)
        return web.Response(text="ok")

    # ---- Socket Mode -------------------------------------------------------------------------

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)  # autoping answers the SDK's keep-alive pings
        await ws.prepare(request)
        self._sockets.append(ws)
        self.ws_connections += 1
        await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A1"}})
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                self.ws_received.append(json.loads(msg.data))
        self._sockets.remove(ws)
        return ws

    async def ws_send(self, message: dict[str, Any]) -> None:
        """Send a frame on the newest open Socket Mode connection."""
        ws = await self.wait_for(lambda: next((w for w in reversed(self._sockets) if not w.closed), None))
        await ws.send_json(message)

    async def send_event(self, body: dict[str, Any], envelope_id: str, retry_attempt: int = 0) -> None:
        """Deliver an Events API body over Socket Mode."""
        await self.ws_send(
            {
                "envelope_id": envelope_id,
                "type": "events_api",
                "accepts_response_payload": False,
                "retry_attempt": retry_attempt,
                "retry_reason": "",
                "payload": body,
            }
        )

    async def request_refresh(self) -> None:
        """Ask the client to reconnect, as Slack does before it recycles a connection."""
        await self.ws_send({"type": "disconnect", "reason": "refresh_requested"})

    # ---- shared files (files.slack.com) ------------------------------------------------------

    def share_file(
        self,
        name: str,
        data: bytes,
        mimetype: str = "text/csv",
        *,
        declared_size: int | None = None,
        chunked: bool = False,
        redirect_to: str | None = None,
        connect_stub: bool = False,
    ) -> dict[str, Any]:
        """Host a file and return its object as Slack puts it in an event's `files` list.

        `connect_stub`: return what Slack Connect channels carry instead, only the id with
        `file_access: check_file_info`; files.info then answers the full object.
        """
        fid = f"F{next(self._file_ids):04d}"
        self.hosted[fid] = HostedFile(data, mimetype, chunked, redirect_to)
        base = f"http://127.0.0.1:{self.port}/files-pri/{self.team_id}-{fid}"
        url_name = quote(name, safe="")
        full = {
            "id": fid,
            "created": 1700000000,
            "timestamp": 1700000000,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": name.rsplit(".", 1)[-1] if "." in name else "binary",
            "pretty_type": mimetype,
            "user": "U123",
            "user_team": self.team_id,
            "editable": False,
            "size": len(data) if declared_size is None else declared_size,
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": True,
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": f"{base}/{url_name}",
            "url_private_download": f"{base}/download/{url_name}",
            "permalink": f"https://fake.slack/files/U123/{fid}/{url_name}",
            "permalink_public": f"https://slack-files.com/{self.team_id}-{fid}-0000",
            "is_starred": False,
            "has_rich_preview": False,
            "file_access": "visible",
        }
        self.file_objects[fid] = full
        if connect_stub:
            return {"id": fid, "mode": "file_access", "file_access": "check_file_info", "created": 0}
        return full

    def m_files_info(self, p: dict[str, Any]) -> dict[str, Any]:
        if "files:read" not in self.scopes:
            return {
                "ok": False,
                "error": "missing_scope",
                "needed": "files:read",
                "provided": ",".join(self.scopes),
            }
        obj = self.file_objects.get(str(p.get("file", "")))
        if obj is None:
            return {"ok": False, "error": "file_not_found"}
        return {"ok": True, "file": obj, "comments": [], "response_metadata": {"next_cursor": ""}}

    async def _file_download(self, request: web.Request) -> web.StreamResponse:
        team, _, fid = request.match_info["team_file"].partition("-")
        self.file_requests.append(Call(fid, dict(request.query), dict(request.headers)))
        hosted = self.hosted.get(fid)
        if team != self.team_id or hosted is None:
            return web.Response(status=404, text="file not found")
        authorized = request.headers.get("Authorization") == f"Bearer {self.bot_token}"
        if not authorized or "files:read" not in self.scopes:
            # What Slack does without a token that has files:read: its sign-in page, not the file.
            return web.Response(text=LOGIN_PAGE, content_type="text/html")
        if hosted.redirect_to:
            raise web.HTTPFound(hosted.redirect_to)
        if not hosted.chunked:
            return web.Response(body=hosted.data, content_type=hosted.mimetype)
        resp = web.StreamResponse(headers={"Content-Type": hosted.mimetype})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(hosted.data), 64 * 1024):
            await resp.write(hosted.data[i : i + 64 * 1024])  # raises once the client hangs up
        await resp.write_eof()
        return resp


LOGIN_PAGE = """<!DOCTYPE html><html lang="en-US"><head><title>Slack</title></head>
<body><h1>Sign in to your workspace</h1><form action="/signin"></form></body></html>"""
