"""The reply sink: the only way the core reaches a chat platform."""

from __future__ import annotations

from typing import Protocol

from core.types import Progress, Reply


class ReplySink(Protocol):
    """Bound to one thread at construction. Adapters implement it; the core only calls it.

    Implementations must not raise for platform failures they can absorb (a failed upload still
    posts the text); an exception here ends the turn's reporting but never its bookkeeping.
    """

    async def progress(self, state: Progress, detail: str = "") -> None:
        """Show where the turn is (thinking, reviewing, running, done); coalesce updates."""
        ...

    async def post(self, reply: Reply) -> None:
        """Post one reply (code, verdict, result with files, answer, notice) in the thread."""
        ...


class DraftSink(ReplySink, Protocol):
    """A sink that can show the answer while the model writes it (Slack, Discord)."""

    async def answer_draft(self, text: str) -> None:
        """Show the answer as the model writes it: the whole text so far each time ("" withdraws it).

        Called often (every few characters); the sink throttles what it shows. The final `AnswerReply`
        follows with the complete text, or a `NoticeReply` when the turn failed mid-answer, after which
        the draft must read as clearly unfinished. The core calls it only where the adapter's sink
        defines it, so sinks without a live view need nothing.
        """
        ...
