"""What the fake Slack keeps of a thread: live messages (posted, edited, deleted, streamed), the status.

Mixed into FakeSlack (tests/fakes/slack_fake.py). Each method validates its arguments the way the Web API
does and answers with Slack's error names; refusals are recorded in `refused` like the other methods.
Limits: chat.startStream / appendStream / stopStream take `markdown_text` (or markdown_text chunks) of at
most 12,000 characters per call, need `recipient_user_id` + `recipient_team_id` outside DMs, and refuse
appends once the stream is stopped (`message_not_in_streaming_state`). assistant.threads.setStatus needs
channel_id, thread_ts and a status string ("" clears it), and at most 10 loading_messages.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

STREAM_TEXT = 12_000
LOADING_MESSAGES = 10
_TS = re.compile(r"\d+\.\d+")


@dataclass
class Message:
    """One message as the thread shows it now."""

    channel: str
    ts: str
    thread_ts: str | None
    text: str = ""
    blocks: list[Any] = field(default_factory=list)
    streamed: str = ""  # markdown appended through the streaming methods
    streaming: bool = False
    deleted: bool = False
    edits: int = 0
    files: list[str] = field(default_factory=list)  # ids of files shared as this message


class SlackThreads:
    """Mixin: message store, chat.delete, the streaming methods, assistant.threads.setStatus."""

    calls: list[Any]
    refused: list[tuple[str, str, list[str]]]
    team_id: str

    def _threads_init(self) -> None:
        self.messages: dict[tuple[str, str], Message] = {}
        self.statuses: dict[tuple[str, str], str] = {}  # (channel, thread_ts) -> current status
        self.status_history: list[str] = []  # every status set, in order ("" = cleared)
        self.set_status_error: str | None = None  # e.g. "missing_scope": refuse setStatus
        self.stream_error: str | None = None  # e.g. "not_allowed": refuse chat.startStream
        self.fail_stream_after: int | None = None  # refuse appends after this many (a mid-stream failure)

    def next_ts(self) -> str:  # provided by FakeSlack
        raise NotImplementedError

    # ---- queries ---------------------------------------------------------------------------------

    def thread_messages(self, channel: str, thread_ts: str | None) -> list[Message]:
        """The live (not deleted) messages in one thread, oldest first, as they read now."""
        live = [
            m
            for m in self.messages.values()
            if m.channel == channel and m.thread_ts == thread_ts and not m.deleted
        ]
        return sorted(live, key=lambda m: float(m.ts))

    def message_at(self, ts: str) -> Message | None:
        """The live message with this ts (ts are unique across channels in the fake)."""
        return next((m for m in self.messages.values() if m.ts == ts and not m.deleted), None)

    def web_calls(self, *, exclude: tuple[str, ...] = ("users.info", "auth.test")) -> list[Any]:
        """Web API calls the bot made, minus look-ups (for counting calls per answer)."""
        return [c for c in self.calls if c.method not in exclude]

    # ---- bookkeeping called by FakeSlack's chat.postMessage / chat.update / uploads ---------------

    def _store_post(self, p: dict[str, Any], ts: str) -> None:
        channel = str(p.get("channel"))
        self.messages[(channel, ts)] = Message(
            channel, ts, p.get("thread_ts"), str(p.get("text") or ""), _blocks(p)
        )

    def _store_update(self, p: dict[str, Any]) -> bool:
        msg = self.messages.get((str(p.get("channel")), str(p.get("ts"))))
        if msg is None or msg.deleted:
            return False
        msg.text = str(p.get("text") or msg.text)
        if "blocks" in p:
            msg.blocks = _blocks(p)
        msg.edits += 1
        return True

    def _store_file(self, channel: str | None, thread_ts: str | None, file_id: str) -> None:
        ts = self.next_ts()  # a file shared in a thread shows as a message of its own
        self.messages[(str(channel), ts)] = Message(str(channel), ts, thread_ts, files=[file_id])

    def _no(self, method: str, error: str, *details: str, asked: bool = False) -> dict[str, Any]:
        """Refuse a call; `asked` refusals were switched on by the test and are not the bot's mistake."""
        if not asked:
            self.refused.append((method, error, list(details)))
        return {"ok": False, "error": error}

    # ---- chat.delete -----------------------------------------------------------------------------

    def m_chat_delete(self, p: dict[str, Any]) -> dict[str, Any]:
        msg = self.messages.get((str(p.get("channel")), str(p.get("ts"))))
        if msg is None or msg.deleted:
            return self._no("chat.delete", "message_not_found")
        msg.deleted = True
        return {"ok": True, "channel": msg.channel, "ts": msg.ts}

    # ---- assistant.threads.setStatus -------------------------------------------------------------

    def m_assistant_threads_setStatus(self, p: dict[str, Any]) -> dict[str, Any]:
        method = "assistant.threads.setStatus"
        if self.set_status_error:
            return self._no(method, self.set_status_error, asked=True)
        channel, thread_ts, status = p.get("channel_id"), p.get("thread_ts"), p.get("status")
        if not channel or not isinstance(status, str):
            return self._no(method, "invalid_arguments", "channel_id and status are required")
        if not isinstance(thread_ts, str) or not _TS.fullmatch(thread_ts):
            return self._no(method, "invalid_thread_ts")
        loading = _json_list(p.get("loading_messages"))
        if loading is not None and len(loading) > LOADING_MESSAGES:
            return self._no(method, "invalid_arguments", f"at most {LOADING_MESSAGES} loading_messages")
        self.statuses[(str(channel), thread_ts)] = status
        self.status_history.append(status)
        return {"ok": True}

    # ---- chat.startStream / appendStream / stopStream --------------------------------------------

    def m_chat_startStream(self, p: dict[str, Any]) -> dict[str, Any]:
        method = "chat.startStream"
        if self.stream_error:
            return self._no(method, self.stream_error, asked=True)
        channel, thread_ts = str(p.get("channel") or ""), p.get("thread_ts")
        if not channel or not isinstance(thread_ts, str) or not _TS.fullmatch(thread_ts):
            return self._no(method, "invalid_arguments", "channel and thread_ts are required")
        if not channel.startswith("D") and not (p.get("recipient_user_id") and p.get("recipient_team_id")):
            return self._no(method, "invalid_arguments", "recipient_user_id and recipient_team_id needed")
        text = _stream_text(p)
        if text is None:
            return self._no(method, "msg_too_long", f"markdown_text over {STREAM_TEXT} characters")
        ts = self.next_ts()
        self.messages[(channel, ts)] = Message(channel, ts, thread_ts, streamed=text, streaming=True)
        return {"ok": True, "channel": channel, "ts": ts}

    def m_chat_appendStream(self, p: dict[str, Any]) -> dict[str, Any]:
        method = "chat.appendStream"
        msg, error = self._stream_of(p)
        if msg is None:
            return self._no(method, error)
        appends = sum(1 for c in self.calls if c.method == method)
        if self.fail_stream_after is not None and appends > self.fail_stream_after:
            return self._no(method, "internal_error", asked=True)
        text = _stream_text(p)
        if not text:
            return self._no(method, "msg_too_long" if text is None else "no_text")
        msg.streamed += text
        return {"ok": True, "channel": msg.channel, "ts": msg.ts}

    def m_chat_stopStream(self, p: dict[str, Any]) -> dict[str, Any]:
        method = "chat.stopStream"
        msg, error = self._stream_of(p)
        if msg is None:
            return self._no(method, error)
        text = _stream_text(p)
        if text is None:
            return self._no(method, "msg_too_long")
        msg.streamed += text
        msg.streaming = False
        if "blocks" in p:
            msg.blocks = _blocks(p)
        return {"ok": True, "channel": msg.channel, "ts": msg.ts}

    def _stream_of(self, p: dict[str, Any]) -> tuple[Message | None, str]:
        msg = self.messages.get((str(p.get("channel")), str(p.get("ts"))))
        if msg is None or msg.deleted:
            return None, "message_not_found"
        if not msg.streaming:
            return None, "message_not_in_streaming_state"
        return msg, ""


def _json_list(value: Any) -> list[Any] | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, list) else None


def _blocks(p: dict[str, Any]) -> list[Any]:
    return _json_list(p.get("blocks")) or []


def _stream_text(p: dict[str, Any]) -> str | None:
    """The markdown a streaming call carries ("" for none), or None when it is over the limit."""
    text = str(p.get("markdown_text") or "")
    for chunk in _json_list(p.get("chunks")) or []:
        if isinstance(chunk, dict) and chunk.get("type") == "markdown_text":
            text += str(chunk.get("text") or "")
    return None if len(text) > STREAM_TEXT else text
