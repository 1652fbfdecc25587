"""DiscordSink: the core's ReplySink bound to one thread (created lazily) or DM channel."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol

import discord

from bot.discord.render import (
    DEFAULT_UPLOAD_LIMIT,
    MAX_CHARS,
    Outgoing,
    clip,
    clip_markdown,
    render_notice,
    render_reply,
    render_status,
)
from bot.discord.status import NO_MENTIONS, SEND_ERRORS, StatusLine, TypingLoop
from core.types import NoticeReply, Progress, Reply

if TYPE_CHECKING:
    from bot.discord.components import StepButtons

log = logging.getLogger(__name__)

_FINAL = (Progress.DONE, Progress.FAILED)
ArchiveMinutes = Literal[60, 1440, 4320, 10080]  # the only values Discord accepts
_ENDING_NOTICES = ("error", "abandoned")  # the turn may stop after these without a final progress


class Target(Protocol):
    """Where a conversation's messages go."""

    upload_limit: int

    async def channel(self) -> discord.abc.Messageable:
        """Return the channel to post in, creating it on first use."""
        ...

    async def early_notice(self, content: str, view: discord.ui.View | None = None) -> bool:
        """Answer before any thread exists (a refusal); False when the target has no such place."""
        ...


class ChannelTarget:
    """An existing thread or DM channel."""

    def __init__(self, channel: discord.abc.Messageable, upload_limit: int = DEFAULT_UPLOAD_LIMIT) -> None:
        self._channel = channel
        self.upload_limit = upload_limit

    async def channel(self) -> discord.abc.Messageable:
        return self._channel

    async def early_notice(self, content: str, view: discord.ui.View | None = None) -> bool:
        return False


class NewThreadTarget:
    """A public thread started from the question's message, created only when there is work to show.

    Creating it lazily means a duplicate delivery (which the core drops silently) or a refusal never leaves
    an empty thread behind; refusals are answered as a reply in the channel instead.
    """

    def __init__(self, message: discord.Message, name: str, auto_archive_min: ArchiveMinutes = 1440) -> None:
        self._message = message
        self._name = name
        self._archive = auto_archive_min
        self._thread: discord.abc.Messageable | None = None
        self._lock = asyncio.Lock()
        guild = message.guild
        self.upload_limit = guild.filesize_limit if guild is not None else DEFAULT_UPLOAD_LIMIT

    async def channel(self) -> discord.abc.Messageable:
        async with self._lock:
            if self._thread is None:
                self._thread = await self._create()
            return self._thread

    async def _create(self) -> discord.abc.Messageable:
        try:
            return await self._message.create_thread(name=self._name, auto_archive_duration=self._archive)
        except SEND_ERRORS as exc:
            # Missing "Create Public Threads" or a thread already exists: answer in the channel instead.
            log.warning("could not create a thread for message %s: %s", self._message.id, exc)
            channel = self._message.channel
            try:
                await channel.send(
                    "⚠️ I could not start a thread here (is *Create Public Threads* allowed?); "
                    "answering in the channel instead.",
                    allowed_mentions=NO_MENTIONS,
                )
            except SEND_ERRORS:
                log.warning("could not post in channel %s either", channel.id)
            return channel

    async def early_notice(self, content: str, view: discord.ui.View | None = None) -> bool:
        if self._thread is not None:
            return False
        extra: dict[str, Any] = {"view": view} if view is not None else {}
        try:
            await self._message.reply(content, allowed_mentions=NO_MENTIONS, mention_author=False, **extra)
            if view is not None:
                view.stop()
        except SEND_ERRORS as exc:
            log.warning("could not reply to message %s: %s", self._message.id, exc)
        return True


class DiscordSink:
    """Implements core.sink.ReplySink for one Discord conversation."""

    def __init__(
        self,
        target: Target,
        *,
        status_interval_s: float = 1.0,
        typing_interval_s: float = 8.0,
        on_finish: Callable[[bool], Awaitable[None]] | None = None,
        buttons: StepButtons | None = None,
    ) -> None:
        self._target = target
        self._status = StatusLine(status_interval_s)
        self._buttons = buttons  # Stop on the status, Re-run / Show full output on results
        if buttons is not None:
            self._status.view = buttons.status_view()
        self._typing = TypingLoop(typing_interval_s)
        self._opened = False
        self._on_finish = on_finish  # told once whether the turn ended well (marks the question)

    async def progress(self, state: Progress, detail: str = "") -> None:
        """Edit the status message (posting it first) and keep the typing indicator going until the end."""
        channel = await self._open()
        final = state in _FINAL
        await self._status.update(channel, render_status(state, detail), final=final)
        if final:
            await self._typing.stop()
            if self._on_finish is not None:
                on_finish, self._on_finish = self._on_finish, None
                await on_finish(state is Progress.DONE)
        else:
            self._typing.start(channel)

    async def post(self, reply: Reply) -> None:
        """Post a reply in the thread; platform failures are logged, never raised."""
        if isinstance(reply, NoticeReply):
            if reply.kind == "queued" and self._opened:
                await self._status.update(await self._open(), render_notice(reply))
                return
            view = self._buttons.notice_view(reply) if self._buttons is not None else None
            if not self._opened and await self._target.early_notice(render_notice(reply), view):
                return
        channel = await self._open()
        outs = render_reply(reply, self._target.upload_limit)
        view = self._buttons.result_view(reply, outs) if self._buttons is not None else None
        for i, message in enumerate(outs):
            await self._send(channel, message, view if i == len(outs) - 1 else None)
        self._typing.touch()
        if isinstance(reply, NoticeReply) and reply.kind in _ENDING_NOTICES:
            await self._typing.stop()
            if self._status.text and not self._status.text.startswith(("✅", "❌")):
                await self._status.update(channel, "⚠️ Stopped · see below", final=True)

    async def aclose(self) -> None:
        """Stop background work (status edits, typing); used at shutdown."""
        await self._typing.stop()
        await self._status.aclose()

    async def _open(self) -> discord.abc.Messageable:
        channel = await self._target.channel()
        self._opened = True
        return channel

    async def _send(
        self, channel: discord.abc.Messageable, out: Outgoing, view: discord.ui.View | None = None
    ) -> None:
        files = [discord.File(io.BytesIO(a.data), filename=a.name) for a in out.files]
        extra: dict[str, Any] = {"view": view} if view is not None else {}
        try:
            if files:
                await channel.send(out.content, files=files, allowed_mentions=NO_MENTIONS, **extra)
            else:
                await channel.send(out.content, allowed_mentions=NO_MENTIONS, **extra)
            if view is not None:
                view.stop()  # dynamic items dispatch the presses; the client need not keep the view
            return
        except SEND_ERRORS as exc:
            if not files:
                log.warning("could not post in %s: %s", getattr(channel, "id", "?"), exc)
                return
            log.warning("upload failed in %s: %s", getattr(channel, "id", "?"), exc)
        # A failed upload still leaves the text, with a short note.
        note = "\n" + clip(f"*(could not attach {', '.join(a.name for a in out.files)})*", 300)
        content = clip_markdown(out.content, MAX_CHARS - len(note)) + note
        try:
            await channel.send(content, allowed_mentions=NO_MENTIONS)
        except SEND_ERRORS as exc:
            log.warning("could not post in %s: %s", getattr(channel, "id", "?"), exc)
