"""The status message edited in place (coalesced, deleted at the end) and the typing indicator."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import discord

from bot.status import Coalescer, cancel_and_wait

log = logging.getLogger(__name__)
NO_MENTIONS = discord.AllowedMentions.none()
# What a call to Discord can raise that the bot absorbs: API errors, and the network being away.
SEND_ERRORS = (discord.HTTPException, aiohttp.ClientError, OSError)


class StatusLine:
    """A message showing where the turn stands while nothing else does (a queue position), deleted after.

    Edits are coalesced by bot.status.Coalescer: at most one per `min_interval_s`, final ones at once.
    """

    def __init__(self, min_interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._coalescer: Coalescer[str] = Coalescer(self._show, min_interval_s, clock)
        self._channel: discord.abc.Messageable | None = None
        self._message: discord.Message | None = None
        self.view: discord.ui.View | None = None  # buttons on the status (Stop); gone with the message

    async def update(self, channel: discord.abc.Messageable, text: str, *, final: bool = False) -> None:
        """Show `text`; intermediate states are coalesced so a busy turn never floods the channel."""
        self._channel = channel
        await self._coalescer.update(text, final=final)

    async def delete(self) -> None:
        """Remove the status message: the thread keeps only the steps and the answer."""
        await self._coalescer.cancel()
        message, self._message = self._message, None
        if message is None:
            return
        try:
            await message.delete()
        except SEND_ERRORS as exc:
            log.warning("could not delete the status message: %s", exc)

    async def aclose(self) -> None:
        """Drop a pending edit (shutdown)."""
        await self._coalescer.cancel()

    async def _show(self, text: str) -> None:
        try:
            if self._message is None and self._channel is not None:
                extra: dict[str, Any] = {"view": self.view} if self.view is not None else {}
                self._message = await self._channel.send(text, allowed_mentions=NO_MENTIONS, **extra)
                if self.view is not None:
                    self.view.stop()  # its buttons are dynamic items: the client need not keep the view
            elif self._message is not None:
                await self._message.edit(content=text, allowed_mentions=NO_MENTIONS)
        except SEND_ERRORS as exc:
            log.warning("could not show the status message: %s", exc)


class TypingLoop:
    """Keeps "codebot is typing…" visible while a turn works; it stops by itself when the turn goes quiet."""

    def __init__(self, interval_s: float = 8.0, max_idle_s: float = 120.0) -> None:
        # Discord shows typing for ~10 s or until the bot posts, so refresh before it lapses and after posts.
        self._interval = interval_s
        self._max_idle = max_idle_s
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._touched = time.monotonic()

    def start(self, channel: discord.abc.Messageable) -> None:
        """Start (or keep) the indicator in `channel`."""
        self.touch()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(channel), name="discord typing")

    def touch(self) -> None:
        """Note activity: a message was posted, so show typing again soon."""
        self._touched = time.monotonic()
        self._wake.set()

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self, channel: discord.abc.Messageable) -> None:
        while time.monotonic() - self._touched < self._max_idle:
            self._wake.clear()
            try:
                await channel.typing()
            except SEND_ERRORS as exc:
                log.debug("typing indicator failed: %s", exc)
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that races the wake-up.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            await asyncio.sleep(min(1.0, self._interval))  # at most one typing call a second
