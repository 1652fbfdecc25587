"""MESSAGE_CREATE handling: route the message, bind a sink to its conversation, hand it to the core."""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord

from bot.discord.components import ButtonActions, StepButtons
from bot.discord.events import Action, ChannelKind, MessageFacts, Route, route, thread_name, to_incoming
from bot.discord.files import DISCORD_CDN_ORIGINS, DiscordFileFetcher, incoming_files
from bot.discord.sink import ArchiveMinutes, ChannelTarget, DiscordSink, NewThreadTarget, Target
from bot.discord.status import SEND_ERRORS
from bot.status import QuestionMarks

if TYPE_CHECKING:
    from core.files_in import FileFetcher
    from core.service import Codebot
    from core.types import ThreadKey

log = logging.getLogger(__name__)

_THREAD_CACHE_MAX = 1024


@dataclass(frozen=True)
class ThreadInfo:
    parent_id: int
    owner_id: int | None


@dataclass(frozen=True)
class MessageOptions:
    """Tunables of the message path, with the defaults used in production."""

    reaction: str = "👀"  # added to a question once the core accepted it
    status_interval_s: float = 1.0  # minimum time between two edits of the status message
    typing_interval_s: float = 8.0
    auto_archive_min: ArchiveMinutes = 1440  # new threads archive after a day without activity


def question_marks(
    message: discord.Message, options: MessageOptions, me: discord.ClientUser
) -> QuestionMarks:
    """The reactions on a question: 👀 once accepted, then ✅ or ❌ when the answer is done."""

    async def add(emoji: str) -> None:
        await message.add_reaction(emoji)

    async def remove(emoji: str) -> None:
        await message.remove_reaction(emoji, me)

    return QuestionMarks(add, remove, errors=SEND_ERRORS, working=options.reaction, done="✅", failed="❌")


class MessageHandler:
    """Turns Discord messages into core submissions."""

    def __init__(
        self,
        core: Codebot,
        client: discord.Client,
        options: MessageOptions | None = None,
        fetcher: FileFetcher | None = None,
    ) -> None:
        self._core = core
        self._client = client
        self._opt = options or MessageOptions()
        self.options = self._opt
        self._fetcher = fetcher or DiscordFileFetcher(DISCORD_CDN_ORIGINS)
        self._threads: dict[int, ThreadInfo] = {}  # threads missing from discord.py's cache
        self.sinks: weakref.WeakSet[DiscordSink] = weakref.WeakSet()
        self.buttons: ButtonActions | None = None  # set by DiscordBot: Stop / Re-run on the turn's messages

    async def on_message(self, message: discord.Message) -> None:
        """Answer the message if it is addressed to the bot or continues a conversation it owns."""
        me = self._client.user
        if me is None or message.author.id == me.id or message.author.bot or message.webhook_id:
            return  # real Discord echoes our own posts back; other bots could loop with us
        facts = await self._facts(message, me)
        decision = route(facts)
        if decision.action is Action.IGNORE or decision.key is None:
            return
        if decision.needs_owner_check and not await self._core.has_conversation(decision.key):
            return
        incoming = to_incoming(facts, decision.key, me.id)
        marks = question_marks(message, self._opt, me)
        target = self._target(decision, message, incoming.text)
        sink = self.question_sink(target, incoming.key, incoming.event_id, marks)
        submitted = await self._core.submit(incoming, sink, self._fetcher)
        await marks.start(submitted.accepted)

    def question_sink(
        self, target: Target, key: ThreadKey, event_id: str, marks: QuestionMarks | None
    ) -> DiscordSink:
        """The sink of one question's turn, tracked for shutdown; `marks` show how the turn ended."""
        sink = DiscordSink(
            target,
            status_interval_s=self._opt.status_interval_s,
            typing_interval_s=self._opt.typing_interval_s,
            on_finish=marks.finish if marks is not None else None,
            buttons=StepButtons(self.buttons, key, event_id) if self.buttons else None,
        )
        self.sinks.add(sink)
        return sink

    def _target(self, decision: Route, message: discord.Message, question: str) -> Target:
        if decision.action is Action.NEW_THREAD:
            return NewThreadTarget(message, thread_name(question), self._opt.auto_archive_min)
        guild = message.guild
        limit = guild.filesize_limit if guild is not None else discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES
        return ChannelTarget(message.channel, limit)

    async def _facts(self, message: discord.Message, me: discord.ClientUser) -> MessageFacts:
        kind, thread = await self._channel_kind(message.channel)
        author = message.author
        admin = isinstance(author, discord.Member) and (
            author.guild_permissions.manage_guild or author.guild_permissions.administrator
        )
        return MessageFacts(
            message_id=message.id,
            channel_id=message.channel.id,
            guild_id=message.guild.id if message.guild else getattr(message.channel, "guild_id", None),
            channel_kind=kind,
            parent_id=thread.parent_id if thread else None,
            author_id=author.id,
            author_name=getattr(author, "display_name", "") or author.name,
            author_is_bot=author.bot,
            author_is_admin=admin,
            mentions_bot=any(u.id == me.id for u in message.mentions),
            content=message.content,
            is_system=message.is_system(),
            thread_owned_by_bot=thread is not None and thread.owner_id == me.id,
            files=incoming_files(message.attachments),
        )

    async def _channel_kind(self, channel: object) -> tuple[ChannelKind, ThreadInfo | None]:
        if isinstance(channel, discord.DMChannel | discord.GroupChannel):
            return "dm", None
        if isinstance(channel, discord.Thread):
            return "thread", ThreadInfo(channel.parent_id, channel.owner_id)
        if isinstance(channel, discord.TextChannel):
            return "text", None
        if isinstance(channel, discord.PartialMessageable) and channel.guild_id is not None:
            return await self._resolve_partial(channel)
        return "other", None

    async def _resolve_partial(
        self, channel: discord.PartialMessageable
    ) -> tuple[ChannelKind, ThreadInfo | None]:
        """A channel missing from the cache (an old thread after a restart): ask the API once."""
        if channel.id in self._threads:
            return "thread", self._threads[channel.id]
        try:
            fetched = await self._client.fetch_channel(channel.id)
        except SEND_ERRORS as exc:
            log.info("cannot resolve channel %s: %s", channel.id, exc)
            return "other", None
        if isinstance(fetched, discord.Thread):
            if len(self._threads) >= _THREAD_CACHE_MAX:
                self._threads.pop(next(iter(self._threads)))
            info = self._threads[channel.id] = ThreadInfo(fetched.parent_id, fetched.owner_id)
            return "thread", info
        return ("text", None) if isinstance(fetched, discord.TextChannel) else ("other", None)
