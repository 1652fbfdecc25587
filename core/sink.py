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
