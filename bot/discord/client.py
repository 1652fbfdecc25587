"""DiscordBot: the gateway client, its slash commands and graceful shutdown, wired to the core."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
import yarl
from discord import app_commands

from bot.discord.commands import (
    FAILED_TEXT,
    CommandRunner,
    build_groups,
    command_path,
    stale_command_text,
)
from bot.discord.components import ButtonActions, StepButtons
from bot.discord.files import DiscordFileFetcher, cdn_origins
from bot.discord.messages import MessageHandler, MessageOptions, question_marks
from bot.discord.sink import ChannelTarget, DiscordSink, Target
from bot.discord.status import NO_MENTIONS, SEND_ERRORS
from bot.discord.sync import CommandSync
from core.settings import ConfigError, DiscordShards, Settings
from core.types import ThreadKey

if TYPE_CHECKING:
    from bot.status import QuestionMarks
    from core.service import Codebot

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://discord.com/api/v10"
DEFAULT_GATEWAY_URL = "wss://gateway.discord.gg/"
CLOSE_WAIT_S = 5.0  # after stop(), how long the gateway task may take to finish before it is cancelled


def point_discord_at(api_url: str | None, gateway_url: str | None) -> None:
    """Set discord.py's REST base and gateway URL (process-wide class attributes; None = Discord's own)."""
    discord.http.Route.BASE = (api_url or DEFAULT_API_URL).rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url or DEFAULT_GATEWAY_URL)


def default_intents() -> discord.Intents:
    """Default intents plus message content (a privileged intent: enable it in the developer portal)."""
    intents = discord.Intents.default()
    intents.message_content = True
    return intents


class _Hooks(discord.Client):
    """The events DiscordBot handles, for a single connection and for a sharded one alike."""

    _bot: DiscordBot

    async def setup_hook(self) -> None:
        await self._bot._after_login()

    async def on_message(self, message: discord.Message) -> None:
        await self._bot.messages.on_message(message)

    async def on_ready(self) -> None:  # a sharded client fires it once every shard is ready
        await self._bot._on_ready()


class _Client(_Hooks):
    def __init__(self, bot: DiscordBot, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._bot = bot


class _ShardedClient(_Hooks, discord.AutoShardedClient):
    """Only the shards CODEBOT_DISCORD_SHARDS names; Discord sends each guild's events to one shard."""

    def __init__(self, bot: DiscordBot, shards: DiscordShards, **kwargs: Any) -> None:
        super().__init__(shard_ids=list(shards.ids), shard_count=shards.count, **kwargs)
        self._bot = bot


def _make_client(bot: DiscordBot, shards: DiscordShards | None, kwargs: dict[str, Any]) -> _Hooks:
    """Unset shards: one connection, as discord.Client decides; set: those shard ids of that count."""
    if shards is None:
        return _Client(bot, **kwargs)
    return _ShardedClient(bot, shards, **kwargs)


class DiscordBot:
    """Runs codebot on Discord: mentions become threads, slash commands reach the core."""

    def __init__(
        self,
        core: Codebot,
        settings: Settings,
        *,
        sync_state_path: Path | None = None,
        message_options: MessageOptions | None = None,
        defer_after_s: float = 1.0,
        close_wait_s: float = CLOSE_WAIT_S,
        **client_kwargs: Any,
    ) -> None:
        self._core = core
        self._settings = settings
        client_kwargs.setdefault("intents", default_intents())
        client_kwargs.setdefault("allowed_mentions", NO_MENTIONS)
        self.client = _make_client(self, settings.discord_shards, client_kwargs)
        self.tree: app_commands.CommandTree[_Hooks] = app_commands.CommandTree(self.client)
        self._runner = CommandRunner(core, defer_after_s)
        for group in build_groups(self._runner):
            self.tree.add_command(group)
        self.tree.on_error = self._on_command_error  # type: ignore[method-assign]
        files = DiscordFileFetcher(cdn_origins(settings.discord_cdn_url))
        self.messages = MessageHandler(core, self.client, message_options, files)
        # Buttons are dynamic items registered before login: one on a message from an earlier process works.
        self.buttons = ButtonActions(core, self.sink_for, self._question_sink)
        self.buttons.register(self.client)
        self.messages.buttons = self.buttons
        self._runner.help_view = self.buttons.examples_view
        state = sync_state_path or settings.db.with_name(settings.db.name + ".discord-commands")
        self._sync = CommandSync(self.tree, state)
        self._sync_now: tuple[bool, int | None] = (False, None)
        self._auto_sync = True
        self._closed = asyncio.Event()
        self._recovered = False
        self._close_wait_s = close_wait_s

    def request_sync(self, guild_id: int | None = None) -> None:
        """Sync slash commands at the next login even if unchanged (`codebot discord --sync-commands`)."""
        self._sync_now = (True, guild_id)

    async def run(self) -> None:
        """Log in and stay connected until stop(); a rejected token is a ConfigError."""
        point_discord_at(self._settings.discord_api_url, self._settings.discord_gateway_url)
        self._closed.clear()
        start = asyncio.create_task(self.client.start(self._token()), name="discord client")
        closed = asyncio.create_task(self._closed.wait(), name="discord closed")
        try:
            await asyncio.wait({start, closed}, return_when=asyncio.FIRST_COMPLETED)
            if not start.done():
                # close() does not wake discord.py's reconnect back-off sleep (up to ~17 min); end it.
                await asyncio.wait({start}, timeout=self._close_wait_s)
                start.cancel()
            await asyncio.gather(start, return_exceptions=True)
        finally:
            closed.cancel()
        exc = None if start.cancelled() else start.exception()
        if isinstance(exc, discord.LoginFailure):
            raise ConfigError("DISCORD_TOKEN was rejected by Discord; copy the bot token again") from None
        if isinstance(exc, discord.PrivilegedIntentsRequired):
            raise ConfigError(
                "the Message Content intent is not enabled: turn it on under Bot -> Privileged Gateway "
                "Intents in the Discord developer portal"
            ) from None
        if exc is not None:
            raise exc

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop taking work, let running turns finish (core.shutdown), then disconnect."""
        await self._core.shutdown(grace_s)
        await asyncio.gather(*(sink.aclose() for sink in list(self.messages.sinks)))
        await self.client.close()
        self._closed.set()

    async def sync_commands(self, guild_id: int | None = None) -> int:
        """Sync slash commands now (globally, or to one guild); logs in first when not running."""
        if self.client.application_id is not None:
            return await self._sync.sync(self.client.application_id, guild_id)
        self._auto_sync = False
        point_discord_at(self._settings.discord_api_url, self._settings.discord_gateway_url)
        async with self.client:
            await self.client.login(self._token())
            return await self._sync.sync(self.client.application_id, guild_id)

    def _token(self) -> str:
        self._settings.require("discord_token")
        assert self._settings.discord_token is not None
        return self._settings.discord_token.get_secret_value()

    def _question_sink(
        self, target: Target, key: ThreadKey, event_id: str, question: discord.Message | None
    ) -> tuple[DiscordSink, QuestionMarks | None]:
        """The sink of a question asked by clicking an example; the message posted for it (when the
        click started a thread) gets the reactions that show how the turn ended, as a typed one does."""
        me, marks = self.client.user, None
        if question is not None and me is not None:
            marks = question_marks(question, self.messages.options, me)
        return self.messages.question_sink(target, key, event_id, marks), marks

    def sink_for(self, key: ThreadKey) -> DiscordSink:
        """A sink for a conversation known only by its key (its thread or DM channel id)."""
        channel = self.client.get_partial_messageable(int(key.thread))
        return DiscordSink(ChannelTarget(channel), buttons=StepButtons(self.buttons, key, ""))

    async def _on_ready(self) -> None:
        shards = self._settings.discord_shards
        log.info(
            "discord: ready, %d guilds, shards %s",
            len(self.client.guilds),
            shards if shards is not None else "all (one connection)",
        )
        if not self._recovered:  # on_ready fires again after reconnects; recover once per process
            self._recovered = True
            await self._core.recover(self.sink_for)  # tell threads whose answer a crash interrupted

    async def _after_login(self) -> None:
        if not self._auto_sync:
            return
        forced, guild_id = self._sync_now
        try:
            if forced:
                await self._sync.sync(self.client.application_id, guild_id)
            else:
                await self._sync.sync_if_changed(self.client.application_id)
        except discord.HTTPException as exc:  # the bot still answers mentions without fresh commands
            log.error("slash command sync failed: %s", exc)

    async def _on_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        if isinstance(error, app_commands.CommandNotFound | app_commands.CommandSignatureMismatch):
            text = stale_command_text(command_path(interaction))  # an old registration, not our failure
            log.info("stale or unknown slash command %s: %s", command_path(interaction), error)
        else:
            text = FAILED_TEXT
            log.error("slash command %s failed: %s", interaction.command and interaction.command.name, error)
        try:
            if interaction.response.is_done():
                await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
            else:
                await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
        except SEND_ERRORS:
            pass  # the interaction expired; nothing more can reach the user
