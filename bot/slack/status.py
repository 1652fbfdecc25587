"""The thread's live status on Slack: assistant.threads.setStatus, or a status message where refused.

The native status ("codebot is running step 2…") leaves nothing in the thread; it is cleared when the turn
ends. Where Slack refuses the call (no thread to attach it to, a workspace or token that does not allow
it), the status falls back to a message edited in place, deleted when the turn ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.events import Target
from bot.slack.render import SlackMessage, render_progress
from bot.slack.thread import SLACK_FAILURES, ThreadMessages, slack_error
from bot.status import Coalescer
from core.types import Progress

log = logging.getLogger(__name__)

_NATIVE = {
    Progress.QUEUED: "is waiting in the queue…",
    Progress.THINKING: "is thinking…",
    Progress.REVIEWING: "is reviewing the code…",
    Progress.RUNNING: "is running the code…",
}
_NATIVE_STEP = {Progress.REVIEWING: "is reviewing {detail}…", Progress.RUNNING: "is running {detail}…"}


def native_status(state: Progress, detail: str = "") -> str:
    """The words after the app's name in the thread's status line."""
    if detail.startswith("step ") and state in _NATIVE_STEP:
        return _NATIVE_STEP[state].format(detail=detail[:40])
    text = _NATIVE.get(state, "is working…")
    return f"{text} · {detail[:80]}" if detail and state is Progress.QUEUED else text


class SlackStatus:
    """Shows where the turn is, coalesced; `end()` clears the status or deletes the fallback message."""

    def __init__(
        self,
        client: AsyncWebClient,
        target: Target,
        *,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        native: bool = True,
        decorate: Callable[[SlackMessage, Progress], SlackMessage] | None = None,
    ) -> None:
        self._client = client
        self._target = target
        self._messages = ThreadMessages(client, target, "status update")
        self._native = native and target.thread_ts is not None  # setStatus needs a thread
        self._set = False  # a native status is showing
        self._message_ts: str | None = None  # the fallback status message
        self._decorate = decorate  # adds the buttons (Stop) to the fallback status message
        self._coalescer: Coalescer[tuple[Progress, str]] = Coalescer(self._show, interval_s, clock)

    async def update(self, state: Progress, detail: str = "") -> None:
        await self._coalescer.update((state, detail))

    async def flush(self) -> None:
        """Apply a coalesced update that is still waiting."""
        await self._coalescer.flush()

    async def end(self) -> None:
        """The turn is over: clear the status line, or delete the status message; nothing is left."""
        await self._coalescer.cancel()
        if self._set:
            self._set = False
            await self._messages.call(
                self._client.assistant_threads_setStatus,
                channel_id=self._target.channel,
                thread_ts=self._target.thread_ts or "",
                status="",
            )
        ts, self._message_ts = self._message_ts, None
        if ts is not None:
            await self._messages.delete(ts)

    async def _show(self, value: tuple[Progress, str]) -> None:
        state, detail = value
        if self._native and await self._set_native(native_status(state, detail)):
            return
        message = render_progress(state, detail)
        if self._decorate is not None:
            message = self._decorate(message, state)
        await self._show_message(message)

    async def _set_native(self, status: str) -> bool:
        try:
            await self._client.assistant_threads_setStatus(
                channel_id=self._target.channel, thread_ts=self._target.thread_ts or "", status=status
            )
        except SlackApiError as exc:  # refused here: use a status message for the rest of the turn
            log.info("assistant.threads.setStatus refused (%s); using a status message", slack_error(exc))
            self._native = False
            return False
        except SLACK_FAILURES as exc:  # a network blip: skip this update, try again with the next
            log.warning("slack status update failed in %s: %s", self._target.channel, slack_error(exc))
            return True
        self._set = True
        return True

    async def _show_message(self, message: SlackMessage) -> None:
        if self._message_ts is None:
            self._message_ts = await self._messages.post(
                message.text, message.blocks, unfurl_links=False, unfurl_media=False
            )
        else:
            await self._messages.update(self._message_ts, message.text, message.blocks)
