"""How the core gets the bytes of a file attached to a question: a fetcher the adapter supplies."""

from __future__ import annotations

from typing import Protocol

from core.types import IncomingFile


class FetchError(Exception):
    """A file could not be fetched. str(exc) is short, safe to show the user and never holds a token."""


class FileTooLarge(FetchError):
    """The declared or the streamed size passed the cap; nothing beyond the cap was buffered."""

    def __init__(self, name: str, limit_bytes: int) -> None:
        super().__init__(f"{name} is larger than the {limit_bytes // (1024 * 1024)} MB limit")
        self.name = name
        self.limit_bytes = limit_bytes


class FileFetcher(Protocol):
    """Implemented by each adapter (Slack, Discord, console); bound to the adapter's credentials."""

    async def fetch(self, file: IncomingFile, max_bytes: int) -> bytes:
        """Return the file's bytes. Raise FileTooLarge past `max_bytes`, FetchError on any failure."""
        ...
