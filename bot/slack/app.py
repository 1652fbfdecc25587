"""SlackBot: slack-bolt wiring (events, slash command, HTTP and Socket Mode) around the core."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import events
from bot.slack.actions import ButtonHandlers, FullOutputs, StepButtons
from bot.slack.admins import UserDirectory
from bot.slack.commands import SlashCommand
from bot.slack.files import SlackFileFetcher, complete_files, file_origins, scope_warning
from bot.slack.render import RenderLimits
from bot.slack.sink import SlackSink, slack_marks
from bot.slack.thread import SLACK_FAILURES, slack_error
from core.command_specs import thread_command
from core.settings import ConfigError, Settings
from core.types import Author, CommandRequest, Incoming, NoticeReply, ThreadKey

if TYPE_CHECKING:
    from core.service import Codebot

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"


def _secret(settings: Settings, name: str) -> str:
    value = getattr(settings, name)
    return value.get_secret_value() if value is not None else ""


def _drop_token_warning(record: logging.LogRecord) -> bool:
    # Bolt reads SLACK_BOT_TOKEN from the environment itself and warns that our client wins; it does.
    return "`token` will be unused" not in record.getMessage()


class SlackBot:
    """The Slack adapter. Construct it inside a running event loop; one instance per process."""

    def __init__(
        self,
        core: Codebot,
        settings: Settings,
        *,
        render_limits: RenderLimits | None = None,
        status_interval_s: float = 1.0,
        admin_ttl_s: float = 300.0,
        rate_limit_retries: int = 2,
        ack_budget_s: float = 2.0,
    ) -> None:
        settings.require("slack_bot_token")
        self._core = core
        self._settings = settings
        self._limits = render_limits or RenderLimits()
        self._status_interval = status_interval_s
        # One pooled session for every Web API call; the SDK would open one per call otherwise.
        self._session = aiohttp.ClientSession()
        self.client = AsyncWebClient(
            token=_secret(settings, "slack_bot_token"),
            base_url=settings.slack_api_url.rstrip("/") + "/",
            session=self._session,
            retry_handlers=[
                AsyncConnectionErrorRetryHandler(),
                AsyncRateLimitErrorRetryHandler(max_retry_count=rate_limit_retries),
                # A 500/503 from Slack is transient; without a retry the answer would be lost.
                AsyncServerErrorRetryHandler(max_retry_count=rate_limit_retries),
            ],
        )
        self.users = UserDirectory(self.client, ttl_s=admin_ttl_s)
        self._outputs = FullOutputs()  # for "Show full output"; memory only (the file is in the thread)
        self.files = SlackFileFetcher(
            _secret(settings, "slack_bot_token"), file_origins(settings.slack_api_url)
        )
        bolt_log = logging.getLogger("bot.slack.bolt")
        bolt_log.addFilter(_drop_token_warning)
        self.app = AsyncApp(
            client=self.client,
            signing_secret=_secret(settings, "slack_signing_secret"),
            name="codebot",
            logger=bolt_log,
        )
        self._socket: AsyncSocketModeHandler | None = None
        self._stopping = False
        self._stopped = asyncio.Event()
        self.port: int | None = None  # the HTTP port actually bound by run_http
        self._register(ack_budget_s)

    def _register(self, ack_budget_s: float) -> None:
        self.app.middleware(self._gate)
        self.app.event("app_mention")(self._on_mention)
        self.app.event("message")(self._on_message)
        self.app.command("/codebot")(
            SlashCommand(self._core, self.users, self.client, ack_budget_s=ack_budget_s)
        )
        buttons = ButtonHandlers(
            self._core, self.users, self.client, self.sink_for, self._outputs, self._question_sink
        )
        buttons.register(self.app)

    async def _gate(self, req: Any, resp: Any, next: Any) -> BoltResponse:
        if self._stopping:  # 503 makes Slack retry later (another replica, or us after restart)
            return BoltResponse(status=503, body="shutting down")
        return await next()

    # ---- events --------------------------------------------------------------------------------

    async def _on_mention(self, body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
        if events.is_from_bot(event, context.bot_user_id or ""):
            return
        await self._handle(body, event, context.bot_user_id or "")

    async def _on_message(self, body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
        bot_user_id = context.bot_user_id or ""
        if not events.message_needs_thread_check(event, bot_user_id):
            return
        key = events.thread_key(str(body.get("team_id", "")), event)
        if not events.is_dm(event) and not await self._core.has_conversation(key):
            return
        await self._handle(body, event, bot_user_id)

    async def _handle(self, body: dict[str, Any], event: dict[str, Any], bot_user_id: str) -> None:
        info = await self.users.lookup(str(event.get("user", "")))
        event = dict(await complete_files(event, self.client.files_info))
        incoming = events.to_incoming(body, event, bot_user_id, Author(info.id, info.name, info.is_admin))
        target = events.reply_target(event)
        sink = self._question_sink(target, incoming)
        command = thread_command(incoming.text)
        if command is not None:  # `@codebot reset` inside the thread it is about
            await self._thread_command(incoming, sink, command.name)
            return
        submitted = await self._core.submit(incoming, sink, self.files)
        await sink.marks.start(submitted.accepted)

    def _question_sink(self, target: events.Target, incoming: Incoming) -> SlackSink:
        """The sink of one question's turn: Stop carries the turn's event id, the :eyes: go on the
        question, and the answer is streamed to the asker."""
        key = incoming.key
        buttons = StepButtons(key, incoming.event_id, self._outputs, self._limits)
        recipient = (key.workspace, incoming.author.id)
        return self._sink(target, buttons, marks=slack_marks(self.client, target), recipient=recipient)

    def sink_for(self, key: ThreadKey) -> SlackSink:
        """A sink for a thread known only by its key (telling threads about interrupted turns)."""
        thread_ts = None if key.thread == key.channel else key.thread  # top-level DM conversation
        target = events.Target(key.channel, thread_ts, key.thread)
        return self._sink(target, StepButtons(key, "", self._outputs, self._limits))  # Re-run, no Stop

    def _sink(self, target: events.Target, buttons: StepButtons, **extra: Any) -> SlackSink:
        return SlackSink(
            self.client,
            target,
            limits=self._limits,
            min_update_interval_s=self._status_interval,
            buttons=buttons,
            **extra,
        )

    async def _thread_command(self, incoming: Incoming, sink: SlackSink, name: str) -> None:
        """A thread command mentioned inside the thread (e.g. `@codebot reset`): run it for that thread."""
        key = incoming.key
        req = CommandRequest(key.platform, key.workspace, key.channel, incoming.author, name, (), key)
        result = await self._core.command(req)
        await sink.post(NoticeReply("info" if result.ok else "error", result.text))

    # ---- serving -------------------------------------------------------------------------------

    def web_app(self) -> web.Application:
        """Return the aiohttp app for HTTP mode: signed events at /slack/events, health at /healthz."""
        self._settings.require("slack_signing_secret")
        webapp = web.Application()
        webapp.router.add_post(EVENTS_PATH, self._http_events)
        webapp.router.add_get(HEALTH_PATH, self._http_health)
        return webapp

    async def _http_events(self, request: web.Request) -> web.Response:
        bolt_response = await self.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_response)

    async def _http_health(self, request: web.Request) -> web.Response:
        ok = not self._stopping and self._core.accepting
        return web.json_response({"ok": ok}, status=200 if ok else 503)

    async def run_http(self, host: str, port: int) -> None:
        """Serve the Events API over HTTP until stop()."""
        runner = web.AppRunner(self.web_app())
        try:
            await self._check_token()
            await self._core.recover(self.sink_for)
            await runner.setup()
            sock = socket.create_server((host, port))
            self.port = sock.getsockname()[1]
            await web.SockSite(runner, sock).start()
            log.info("slack: listening on http://%s:%s%s", host, self.port, EVENTS_PATH)
            await self._stopped.wait()
        finally:
            await runner.cleanup()
            await self._session.close()

    async def run_socket_mode(self) -> None:
        """Connect over Socket Mode and handle events until stop()."""
        self._settings.require("slack_app_token")
        self._socket = AsyncSocketModeHandler(self.app, app_token=_secret(self._settings, "slack_app_token"))
        try:
            await self._check_token()
            await self._core.recover(self.sink_for)
            await self._socket.connect_async()
            log.info("slack: connected in Socket Mode")
            await self._stopped.wait()
        finally:
            if not self._socket.client.closed:
                await self._socket.close_async()
            await self._session.close()

    async def _check_token(self) -> None:
        """Fail fast, and say which setting is wrong, when Slack rejects the bot token."""
        try:
            answer = await self.client.auth_test()
        except SlackApiError as exc:
            raise ConfigError(
                f"Slack rejected SLACK_BOT_TOKEN ({slack_error(exc)}); copy the Bot User OAuth Token "
                "(xoxb-...) from the app's Install App page"
            ) from None
        except SLACK_FAILURES as exc:
            raise ConfigError(
                f"cannot reach the Slack Web API at {self._settings.slack_api_url} ({slack_error(exc)}); "
                "check SLACK_API_URL and the network"
            ) from None
        if (warning := scope_warning(answer.headers)) is not None:
            log.warning("slack: %s", warning)

    async def stop(self) -> None:
        """Stop taking events, let running turns finish (bounded), then close connections."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        try:
            if self._socket is not None:
                await self._socket.close_async()  # Slack redelivers unacked events elsewhere
            await self._core.shutdown(self._settings.shutdown_grace_s)
        finally:
            self._stopped.set()  # a running run_* returns and closes its server or socket
            await self._session.close()
