"""DiscordSink: the core's ReplySink bound to one thread (created lazily) or DM channel."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

import discord

from bot.discord.draft import DiscordDraft
from bot.discord.render import (
    DEFAULT_UPLOAD_LIMIT,
    MAX_CHARS,
    Attachment,
    Outgoing,
    clip,
    clip_markdown,
    render_notice,
    render_reply,
    render_status,
    render_step,
)
from bot.discord.status import NO_MENTIONS, SEND_ERRORS, StatusLine, TypingLoop
from core.types import AnswerReply, CodeReply, NoticeReply, Progress, Reply, StepReply, StepView

if TYPE_CHECKING:
    from bot.discord.components import StepButtons

log = logging.getLogger(__name__)

ArchiveMinutes = Literal[60, 1440, 4320, 10080]  # the only values Discord accepts


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


@dataclass
class _StepMessage:
    view: StepView
    message: discord.Message | None = None
    attached: set[str] = field(default_factory=set)  # file names already on the message
    overflow_sent: bool = False  # files beyond one message's limits went out in further messages


class DiscordSink:
    """Implements core.sink.ReplySink for one Discord conversation.

    Each step is one message edited as it grows (code, verdict, result, with its own state line); while
    the model thinks, the typing indicator shows it. A status message appears only for a queue position
    and is deleted once the turn starts or ends.
    """

    def __init__(
        self,
        target: Target,
        *,
        status_interval_s: float = 1.0,
        typing_interval_s: float = 8.0,
        on_finish: Callable[[bool], Awaitable[None]] | None = None,
        draft_interval_s: float = 1.0,
        buttons: StepButtons | None = None,
    ) -> None:
        self._target = target
        self._status = StatusLine(status_interval_s)
        self._buttons = buttons  # Stop on a running step (and a queue position), Re-run on results
        if buttons is not None:
            self._status.view = buttons.status_view()
        self._typing = TypingLoop(typing_interval_s)
        self._opened = False
        self._on_finish = on_finish  # told once whether the turn ended well (marks the question)
        self._steps: dict[int, _StepMessage] = {}
        self._draft = DiscordDraft(self._send, draft_interval_s)

    async def progress(self, state: Progress, detail: str = "") -> None:
        """Keep the typing indicator going until the end; a queue position shows as a status message."""
        channel = await self._open()
        if state.final:
            await self._end()
            if self._on_finish is not None:
                on_finish, self._on_finish = self._on_finish, None
                await on_finish(state is Progress.DONE)
            return
        if state is Progress.QUEUED:
            await self._status.update(channel, render_status(state, detail))
            return
        await self._status.delete()  # out of the queue: the steps and typing tell the rest
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
        if isinstance(reply, StepReply):
            await self._step(channel, reply)
        else:
            outs = render_reply(reply, self._target.upload_limit)
            if isinstance(reply, AnswerReply):
                outs = await self._draft.finish(outs)  # the draft becomes the answer's first message
            elif reply.ends_turn:
                await self._draft.interrupt()
            view = self._buttons.notice_view(reply) if self._buttons is not None else None
            for i, message in enumerate(outs):
                await self._send(channel, message, view if i == len(outs) - 1 else None)
        self._typing.touch()
        if isinstance(reply, NoticeReply) and reply.ends_turn:
            await self._end()

    async def answer_draft(self, text: str) -> None:
        """Show the answer as the model writes it: one message, edited at most once a second."""
        await self._draft.draft(await self._open(), text)
        self._typing.touch()

    async def aclose(self) -> None:
        """Stop background work (status edits, typing); used at shutdown."""
        await self._typing.stop()
        await self._status.aclose()

    async def _open(self) -> discord.abc.Messageable:
        channel = await self._target.channel()
        self._opened = True
        return channel

    async def _end(self) -> None:
        await self._typing.stop()
        await self._status.delete()
        await self._draft.interrupt()  # only a draft that never became an answer
        for step in self._steps.values():  # a step still waiting for its result says it stopped
            if step.view.open:
                step.view = replace(step.view, stopped=True)
                await self._show_step(await self._open(), step)

    # ---- steps ---------------------------------------------------------------------------------

    async def _step(self, channel: discord.abc.Messageable, reply: StepReply) -> None:
        step = self._steps.get(reply.step)
        if isinstance(reply, CodeReply) or step is None:
            code = reply.code if isinstance(reply, CodeReply) else ""
            step = self._steps[reply.step] = _StepMessage(StepView(reply.step, code))
        step.view = step.view.grown(reply)
        await self._show_step(channel, step)

    async def _show_step(self, channel: discord.abc.Messageable, step: _StepMessage) -> None:
        first, *more = render_step(step.view, self._target.upload_limit)
        buttons = self._buttons.step_view(step.view, [first, *more]) if self._buttons is not None else None
        if step.message is None:
            step.message = await self._send(channel, first, buttons)
        else:
            edited = await self._edit(step.message, first, step.attached, buttons)
            step.message = edited or step.message
        step.attached.update(a.name for a in first.files)
        if more and not step.overflow_sent:
            step.overflow_sent = True
            for out in more:
                await self._send(channel, out)

    async def _edit(
        self, message: discord.Message, out: Outgoing, attached: set[str], view: discord.ui.View | None
    ) -> discord.Message | None:
        """Edit a step's message in place, adding the files it did not carry yet; with buttons, the
        message shows `view` (None takes its buttons away)."""
        new = [a for a in out.files if a.name not in attached]
        extra: dict[str, Any] = {"view": view} if self._buttons is not None else {}
        keep: dict[str, Any] = {"attachments": [*message.attachments, *map(_file, new)]} if new else {}
        try:
            edited = await message.edit(content=out.content, allowed_mentions=NO_MENTIONS, **keep, **extra)
            if view is not None:
                view.stop()  # dynamic items dispatch the presses; the client need not keep the view
            return edited
        except SEND_ERRORS as exc:
            log.warning("could not edit step message %s: %s", message.id, exc)
        if not new:
            return None
        try:
            return await message.edit(content=_unattached(out, new), allowed_mentions=NO_MENTIONS, **extra)
        except SEND_ERRORS as exc:
            log.warning("could not edit step message %s: %s", message.id, exc)
            return None

    async def _send(
        self, channel: discord.abc.Messageable, out: Outgoing, view: discord.ui.View | None = None
    ) -> discord.Message | None:
        extra: dict[str, Any] = {"view": view} if view is not None else {}
        files: dict[str, Any] = {"files": [_file(a) for a in out.files]} if out.files else {}
        where = getattr(channel, "id", "?")
        try:
            sent = await channel.send(out.content, allowed_mentions=NO_MENTIONS, **files, **extra)
            if view is not None:
                view.stop()  # dynamic items dispatch the presses; the client need not keep the view
            return sent
        except SEND_ERRORS as exc:
            log.warning("%s in %s: %s", "upload failed" if files else "could not post", where, exc)
            if not files:
                return None
        try:
            return await channel.send(_unattached(out, out.files), allowed_mentions=NO_MENTIONS, **extra)
        except SEND_ERRORS as exc:
            log.warning("could not post in %s: %s", where, exc)
            return None


def _file(a: Attachment) -> discord.File:
    return discord.File(io.BytesIO(a.data), filename=a.name)


def _unattached(out: Outgoing, missing: Iterable[Attachment]) -> str:
    """A message whose files could not be attached keeps its text, with a short note naming them."""
    note = "\n" + clip(f"*(could not attach {', '.join(a.name for a in missing)})*", 300)
    return clip_markdown(out.content, MAX_CHARS - len(note)) + note
