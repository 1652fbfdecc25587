"""The answer on Discord as the model writes it: one message edited at most once per interval.

Discord allows about five edits per five seconds in a channel; drafts are edited no more than once per
`interval_s` (1 s by default), and the final answer replaces the draft (longer answers continue in more
messages). A turn that fails mid-answer leaves the draft saying it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import discord

from bot.discord.answer import answer_markdown
from bot.discord.render import MAX_CHARS, Outgoing, clip_markdown, neutralize
from bot.discord.status import NO_MENTIONS, SEND_ERRORS
from bot.status import Coalescer

log = logging.getLogger(__name__)

WRITING = " …"
INTERRUPTED = "\n*(The answer stopped here; see the message below.)*"

Send = Callable[[discord.abc.Messageable, Outgoing], Awaitable[discord.Message | None]]


def render_draft(text: str, note: str = WRITING) -> str:
    """The answer so far as Discord markdown, within one message, with a note that it is not done."""
    shown = neutralize(answer_markdown(text)).strip() or "…"
    return clip_markdown(shown, MAX_CHARS - len(note)) + note


class DiscordDraft:
    """One answer's draft message in a thread."""

    def __init__(self, send: Send, interval_s: float = 1.0) -> None:
        self._send = send
        self._channel: discord.abc.Messageable | None = None
        self._message: discord.Message | None = None
        self._latest = ""
        self._closed = False
        self._edits: Coalescer[str] = Coalescer(self._show, interval_s)

    async def draft(self, channel: discord.abc.Messageable, text: str) -> None:
        """Show the answer so far (coalesced); "" removes the draft (the text was not the answer)."""
        if self._closed:
            return
        self._channel = channel
        if not text:
            await self._edits.cancel()
            message, self._message, self._latest = self._message, None, ""
            if message is not None:
                await self._call(message.delete())
            return
        self._latest = text
        await self._edits.update(text)

    async def finish(self, outs: list[Outgoing]) -> list[Outgoing]:
        """Put the final answer's first message into the draft; return the messages still to send."""
        await self._edits.cancel()
        self._closed = True
        if self._message is None or not outs or outs[0].files:
            return outs
        if await self._edit(outs[0].content):
            return outs[1:]
        return outs

    async def interrupt(self) -> None:
        """The turn failed mid-answer: keep what was written and say it stopped."""
        await self._edits.cancel()
        if self._message is None or self._closed:
            return
        self._closed = True
        await self._edit(render_draft(self._latest, INTERRUPTED))

    async def _show(self, text: str) -> None:
        content = render_draft(text)
        if self._message is None and self._channel is not None:
            self._message = await self._send(self._channel, Outgoing(content))
        elif self._message is not None:
            await self._edit(content)

    async def _edit(self, content: str) -> bool:
        assert self._message is not None
        return await self._call(self._message.edit(content=content, allowed_mentions=NO_MENTIONS))

    async def _call(self, call: Awaitable[object]) -> bool:
        try:
            await call
        except SEND_ERRORS as exc:
            log.warning("could not update the answer draft: %s", exc)
            return False
        return True
