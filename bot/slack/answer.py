"""The answer on Slack as the model writes it: streamed, or one message updated in place.

Streaming uses slack-sdk's chat_stream (chat.startStream / appendStream / stopStream). Appends cannot
be taken back, so only complete lines are streamed, each made safe once (markup.markdown_line); the rest
follows with stopStream. Where Slack refuses streaming (a top-level DM has no thread; a workspace or a
method that says no), the draft is one message with a `markdown` block, updated at most once per
interval, and finally showing the answer. Either way a failure leaves a message that says it stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from slack_sdk.web.async_chat_stream import AsyncChatStream
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.events import Target
from bot.slack.markup import markdown_line, to_markdown
from bot.slack.render import Attachment, RenderLimits, fallback
from bot.slack.thread import SLACK_FAILURES, ThreadMessages, slack_error
from bot.status import Coalescer

log = logging.getLogger(__name__)

MARKDOWN_CHARS = 12_000  # Slack: the markdown block, and markdown_text per streaming call
STREAM_CHARS = 11_000  # streamed in all before the rest is attached instead (room for the note)
INTERRUPTED = "\n\n_(The answer stopped here; see the message below.)_"
WRITING = " …"
ATTACHED = "\n\n_(The answer is long; the full answer is attached as `answer.md`.)_"

Upload = Callable[[tuple[Attachment, ...]], Any]


def markdown_block(text: str) -> dict[str, Any]:
    return {"type": "markdown", "text": text or " "}


class SlackAnswer:
    """One answer's message in a thread, from the first draft to the final text."""

    def __init__(
        self,
        client: AsyncWebClient,
        target: Target,
        limits: RenderLimits,
        *,
        recipient: tuple[str, str] | None = None,  # (team id, user id) of the asker: needed to stream
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._target = target
        self._messages = ThreadMessages(client, target, "answer update")
        self._limits = limits
        self._recipient = recipient
        self._stream: AsyncChatStream | None = None
        self._streaming = recipient is not None and target.thread_ts is not None
        self._ts: str | None = None  # the answer's message
        self._sent = ""  # source text whose lines went out in the stream
        self._sent_chars = 0  # characters streamed (after making them safe)
        self._in_fence = False
        self._latest = ""
        self._closed = False  # finished or interrupted: nothing more changes
        self._drafts: Coalescer[str] = Coalescer(self._show_now, interval_s, clock)

    async def draft(self, text: str) -> None:
        """Show the answer so far (coalesced); "" takes the draft away."""
        if self._closed:
            return
        if not text:
            await self.withdraw()
            return
        self._latest = text
        if self._streaming and text.startswith(self._sent) and "\n" not in text[len(self._sent) :]:
            return  # no new complete line to stream: keep the interval for when there is one
        await self._drafts.update(text)

    async def finish(self, text: str, upload: Upload) -> bool:
        """Turn the draft into the final answer; False when there was no draft to turn."""
        await self._drafts.cancel()
        if self._closed or (self._ts is None and not (self._latest and await self._show_now(self._latest))):
            return False
        self._closed = True
        if self._stream is not None and (text + "\n").startswith(self._sent):
            await self._stop_stream(text[len(self._sent) :], upload, text)
        else:
            await self._close_stream("")
            await self._update(text, final=True, upload=upload)
        return True

    async def interrupt(self) -> None:
        """The turn failed mid-answer: the draft keeps what was written and says it stopped."""
        await self._drafts.cancel()
        if self._ts is None or self._closed:
            return
        self._closed = True
        if self._stream is not None:
            rest = self._latest[len(self._sent) :] if self._latest.startswith(self._sent) else ""
            if await self._close_stream(self._safe_tail(rest) + INTERRUPTED):
                return
        await self._update(self._latest, note=INTERRUPTED)

    async def withdraw(self) -> None:
        """The text was not the answer (the model went on to run code): remove the draft."""
        await self._drafts.cancel()
        self._latest = ""
        ts, self._ts = self._ts, None
        if ts is None:
            return
        await self._close_stream("")
        self._stream, self._sent, self._sent_chars, self._in_fence = None, "", 0, False
        await self._messages.delete(ts)

    # ---- drafts --------------------------------------------------------------------------------

    async def _show_now(self, text: str) -> bool:
        """Show a draft; True when a message is on screen afterwards."""
        streamed = self._streaming and text.startswith(self._sent)
        if streamed and await self._append(text[: text.rfind("\n") + 1]):
            return self._ts is not None  # nothing shows until the first line is complete
        await self._update(text, note=WRITING)
        return self._ts is not None

    async def _append(self, complete: str) -> bool:
        """Stream the complete lines not sent yet; False when streaming is not possible (any more)."""
        delta = complete[len(self._sent) :]
        if not delta:
            return True
        safe = self._safe_lines(delta)
        if self._sent_chars + len(safe) > STREAM_CHARS:
            return True  # the rest is attached at the end
        if self._stream is None:
            team, user = self._recipient or ("", "")
            self._stream = await self._client.chat_stream(
                channel=self._target.channel,
                thread_ts=self._target.thread_ts or "",
                recipient_team_id=team,
                recipient_user_id=user,
                buffer_size=1,  # our own coalescing decides when to send
            )
        try:
            await self._stream.append(markdown_text=safe)
        except SLACK_FAILURES as exc:
            log.info("slack streaming failed (%s); updating the message instead", slack_error(exc))
            self._ts = self._ts or self._stream.ts
            self._stream, self._streaming = None, False
            return False
        self._ts = self._stream.ts
        self._sent, self._sent_chars = complete, self._sent_chars + len(safe)
        return True

    def _safe_lines(self, source: str) -> str:
        out = []
        for line in source.split("\n")[:-1]:  # complete lines only: each ends with "\n"
            shown, self._in_fence = markdown_line(line, self._in_fence)
            out.append(shown + "\n")
        return "".join(out)

    def _safe_tail(self, rest: str) -> str:
        """The remaining text, complete lines and the last partial one, made safe."""
        return self._safe_lines(rest + "\n").rstrip("\n")

    async def _stop_stream(self, rest: str, upload: Upload, text: str) -> None:
        tail = self._safe_tail(rest)
        if self._sent_chars + len(tail) <= STREAM_CHARS:
            if await self._close_stream(tail):
                return
        else:  # too long to stream in full: what is shown stays, the rest is attached
            note = ATTACHED if self._sent_chars + len(ATTACHED) <= MARKDOWN_CHARS else ""
            if await self._close_stream(note):
                await upload((Attachment("answer.md", text.encode(), "Full answer"),))
                return
        await self._update(text, final=True, upload=upload)

    async def _close_stream(self, markdown_text: str) -> bool:
        """Stop the stream (if any) with a last piece; False when Slack refused."""
        stream, self._stream = self._stream, None
        if stream is None or stream.ts is None:
            return stream is None and markdown_text == ""
        try:
            await stream.stop(markdown_text=markdown_text or None)
        except SLACK_FAILURES as exc:
            log.info("slack stopStream failed: %s", slack_error(exc))
            return False
        return True

    # ---- one message updated in place ----------------------------------------------------------

    async def _update(
        self, text: str, *, note: str = "", final: bool = False, upload: Upload | None = None
    ) -> None:
        shown = to_markdown(text)
        attach = final and len(shown) + len(note) > MARKDOWN_CHARS
        if attach:
            note = ATTACHED
        if len(shown) + len(note) > MARKDOWN_CHARS:
            shown = shown[: MARKDOWN_CHARS - len(note) - 1] + "…"
        fallback_text, blocks = fallback(text, self._limits), [markdown_block(shown + note)]
        if self._ts is None:
            self._ts = await self._messages.post(fallback_text, blocks)
        else:
            await self._messages.update(self._ts, fallback_text, blocks)
        if attach and upload is not None:
            await upload((Attachment("answer.md", text.encode(), "Full answer"),))
