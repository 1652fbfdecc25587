"""The status message edited in place (coalesced) and the typing indicator of one thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import discord

log = logging.getLogger(__name__)
NO_MENTIONS = discord.AllowedMentions.none()
# What a call to Discord can raise that the bot absorbs: API errors, and the network being away.
SEND_ERRORS = (discord.HTTPException, aiohttp.ClientError, OSError)


class StatusLine:
    """One message showing where the turn is; edits at most once per `min_interval_s`, final ones at once."""

    def __init__(self, min_interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = min_interval_s
        self._clock = clock
        self._message: discord.Message | None = None
        self._shown = ""
        self._wanted = ""
        self._last = 0.0
        self._lock = asyncio.Lock()
        self._flush: asyncio.Task[None] | None = None
        self.view: discord.ui.View | None = None  # buttons on the status (Stop), removed when final

    @property
    def text(self) -> str:
        """The text the status message shows (or will show after the pending edit)."""
        return self._wanted

    async def update(self, channel: discord.abc.Messageable, text: str, *, final: bool = False) -> None:
        """Show `text`; intermediate states are coalesced so a busy turn never floods the channel."""
        self._wanted = text
        if self._message is None:
            async with self._lock:
                if self._message is None:
                    await self._post(channel)
                    return
        if final:
            await self._cancel_flush()
            await self._apply(final=True)
            return
        if self._flush is not None and not self._flush.done():
            return  # the pending edit will pick up the newest text
        delay = self._last + self._interval - self._clock()
        if delay <= 0:
            await self._apply()
        else:
            self._flush = asyncio.create_task(self._apply_later(delay), name="discord status edit")

    async def aclose(self) -> None:
        """Drop a pending edit (shutdown)."""
        await self._cancel_flush()

    async def _post(self, channel: discord.abc.Messageable) -> None:
        extra: dict[str, Any] = {"view": self.view} if self.view is not None else {}
        try:
            self._message = await channel.send(self._wanted, allowed_mentions=NO_MENTIONS, **extra)
            if self.view is not None:
                self.view.stop()  # its buttons are dynamic items: the client need not keep the view
        except SEND_ERRORS as exc:
            log.warning("could not post the status message: %s", exc)
            return
        self._shown, self._last = self._wanted, self._clock()

    async def _apply_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._apply()

    async def _apply(self, final: bool = False) -> None:
        async with self._lock:
            if self._message is None or self._wanted == self._shown:
                return
            text = self._wanted
            extra: dict[str, Any] = {"view": None} if final and self.view is not None else {}
            try:
                await self._message.edit(content=text, allowed_mentions=NO_MENTIONS, **extra)
            except SEND_ERRORS as exc:
                log.warning("could not edit the status message: %s", exc)
            self._shown, self._last = text, self._clock()

    async def _cancel_flush(self) -> None:
        task, self._flush = self._flush, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


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
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

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
