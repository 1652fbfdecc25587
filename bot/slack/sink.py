"""SlackSink: the core's ReplySink bound to one Slack thread."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.events import Target
from bot.slack.markup import escape
from bot.slack.render import (
    Attachment,
    RenderLimits,
    SlackMessage,
    name_list,
    render,
    render_progress,
    section,
    within_limits,
)
from core.types import Progress, Reply

if TYPE_CHECKING:
    from bot.slack.actions import StepButtons

log = logging.getLogger(__name__)

FINAL_STATES = frozenset({Progress.DONE, Progress.FAILED})
# Failures the sink absorbs: the turn's bookkeeping must go on even when Slack misbehaves.
SLACK_FAILURES = (SlackClientError, aiohttp.ClientError, asyncio.TimeoutError, OSError)


def slack_error(exc: BaseException) -> str:
    """Name a Slack failure briefly, without request details (which could carry tokens)."""
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or exc.response.status_code)
    return type(exc).__name__


class SlackSink:
    """Posts a turn's replies into one thread and keeps one status message updated in place."""

    def __init__(
        self,
        client: AsyncWebClient,
        target: Target,
        *,
        limits: RenderLimits | None = None,
        min_update_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        buttons: StepButtons | None = None,
    ) -> None:
        self._client = client
        self._buttons = buttons  # Stop on the status, Re-run / Show full output on results
        self._target = target
        self._limits = limits or RenderLimits()
        self._interval = min_update_interval_s
        self._clock = clock
        self._status_ts: str | None = None
        self._last_update = float("-inf")
        self._pending: SlackMessage | None = None
        self._flush: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def target(self) -> Target:
        return self._target

    async def progress(self, state: Progress, detail: str = "") -> None:
        """Show the turn's state in the status message; updates closer than the interval are coalesced."""
        message = render_progress(state, detail)
        if self._buttons is not None:
            message = self._buttons.status(message, state)
        if state in FINAL_STATES:
            await self._cancel_flush()
            await self._show(message)
            await self._mark_question("white_check_mark" if state is Progress.DONE else "x")
            return
        wait = self._last_update + self._interval - self._clock()
        if self._status_ts is None or wait <= 0:
            self._pending = None  # a flush that is about to fire must not show an older state after this
            await self._show(message)
            return
        self._pending = message
        if self._flush is None or self._flush.done():
            self._flush = asyncio.create_task(self._flush_after(wait))

    async def post(self, reply: Reply) -> None:
        """Post a reply's messages in the thread, then upload its files (a failed upload is noted)."""
        messages = render(reply, self._limits)
        if self._buttons is not None:
            messages = self._buttons.result(reply, messages)
        for message in messages:
            if await self._post_message(message) and message.attachments:
                await self._upload(message.attachments)

    async def _mark_question(self, emoji: str) -> None:
        """Swap the :eyes: on the question for how the turn ended; cosmetic, so failures are ignored."""
        channel, ts = self._target.channel, self._target.message_ts
        for call, name in ((self._client.reactions_remove, "eyes"), (self._client.reactions_add, emoji)):
            try:
                await call(channel=channel, timestamp=ts, name=name)
            except SLACK_FAILURES as exc:
                log.debug("reaction %s on %s failed: %s", name, ts, exc)

    async def aclose(self) -> None:
        """Apply a coalesced status update that is still waiting, then stop."""
        if self._flush is not None and not self._flush.done():
            await self._flush

    async def _flush_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        message, self._pending = self._pending, None
        if message is not None:
            await self._show(message)

    async def _cancel_flush(self) -> None:
        self._pending = None
        task, self._flush = self._flush, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _show(self, message: SlackMessage) -> None:
        async with self._lock:  # the first post must finish before any update can name its ts
            self._last_update = self._clock()
            try:
                if self._status_ts is None:
                    resp = await self._client.chat_postMessage(**self._message_args(message))
                    self._status_ts = resp.get("ts")
                else:
                    await self._client.chat_update(
                        channel=self._target.channel,
                        ts=self._status_ts,
                        text=message.text,
                        blocks=message.blocks,
                    )
            except SLACK_FAILURES as exc:
                log.warning("slack status update failed in %s: %s", self._target.channel, slack_error(exc))

    def _message_args(self, message: SlackMessage) -> dict[str, Any]:
        args: dict[str, Any] = {
            "channel": self._target.channel,
            "text": message.text,
            "blocks": list(message.blocks),
            "unfurl_links": False,
            "unfurl_media": False,
        }
        if self._target.thread_ts:
            args["thread_ts"] = self._target.thread_ts
        return args

    async def _post_message(self, message: SlackMessage) -> bool:
        try:
            await self._client.chat_postMessage(**self._message_args(message))
            return True
        except SLACK_FAILURES as exc:
            log.warning("slack post failed in %s: %s", self._target.channel, slack_error(exc))
            return False

    async def _upload(self, attachments: tuple[Attachment, ...]) -> None:
        uploads = [{"content": a.content, "filename": a.filename, "title": a.title} for a in attachments]
        try:
            await self._client.files_upload_v2(
                channel=self._target.channel, thread_ts=self._target.thread_ts, file_uploads=uploads
            )
        except SLACK_FAILURES as exc:
            names = name_list([a.filename for a in attachments], self._limits.names_chars)
            log.warning("slack upload failed in %s: %s", self._target.channel, slack_error(exc))
            error = escape(slack_error(exc))[:100]
            note = f":warning: Could not upload {names} ({error}); the text above is all I can show."
            message = SlackMessage(f"Could not upload {names}", (section(note),))
            await self._post_message(within_limits(message, self._limits))
