"""Bounded capture of a run's stdout and stderr, split from the harness's trailer.

The host knows the trailer's marker (it chose the nonce), so it counts user bytes exactly and stops the
run the moment they pass the cap; nothing is ever buffered without bound.
"""

from __future__ import annotations

import asyncio
import binascii
from dataclasses import dataclass, field
from typing import Any

TRAILER_MAX = 256 * 1024  # result repr + traceback, base64 of UTF-8 (see harness MAX_REPR/MAX_ERROR)
CHUNK = 64 * 1024


@dataclass
class Capture:
    """Collects both streams of one run; `overflow` is set once user output passes max_bytes."""

    max_bytes: int
    mark: bytes
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    trailer: bytearray = field(default_factory=bytearray)
    in_trailer: bool = False
    overflow: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)  # the whole trailer has arrived
    err_finished: asyncio.Event = field(default_factory=asyncio.Event)  # stderr's end mark has arrived

    @property
    def user_bytes(self) -> int:
        return len(self.stdout) + len(self.stderr)

    def feed_stdout(self, chunk: bytes) -> None:
        """Add stdout bytes, diverting everything from the marker on into the trailer."""
        if self.in_trailer:
            self._add_trailer(chunk)
            return
        self.stdout += chunk
        # the marker may straddle two chunks: search the new bytes plus a marker's length before them
        start = max(0, len(self.stdout) - len(chunk) - len(self.mark))
        at = self.stdout.find(self.mark, start)
        if at >= 0:
            rest = bytes(self.stdout[at + len(self.mark) :])
            del self.stdout[at:]
            self.in_trailer = True
            self._add_trailer(rest)
        self._check()

    def feed_stderr(self, chunk: bytes) -> None:
        """Add stderr bytes, up to the harness's end mark."""
        if self.err_finished.is_set():
            return
        self.stderr += chunk
        start = max(0, len(self.stderr) - len(chunk) - len(self.mark))
        at = self.stderr.find(self.mark, start)
        if at >= 0:
            del self.stderr[at:]
            self.err_finished.set()
        self._check()

    def _add_trailer(self, chunk: bytes) -> None:
        self.trailer += chunk
        if len(self.trailer) > TRAILER_MAX:  # only forged or broken trailers get here
            del self.trailer[TRAILER_MAX:]
            self.overflow.set()
        if b"\n" in chunk:
            self.finished.set()

    def _check(self) -> None:
        # keep at most one cap's worth per stream beyond the cap, then ask for the kill
        if self.user_bytes > self.max_bytes:
            del self.stdout[self.max_bytes + 1 :]
            del self.stderr[self.max_bytes + 1 :]
            self.overflow.set()

    def meta(self) -> dict[str, Any] | None:
        """Return the harness's trailer (exit, exc_type, result, error), or None if it is missing."""
        if not self.in_trailer:
            return None
        parts = bytes(self.trailer).split(b"\n", 1)[0].split(b" ")
        if len(parts) != 4:
            return None
        try:
            values = [None if p == b"-" else binascii.a2b_base64(p).decode("utf-8", "replace") for p in parts]
        except (binascii.Error, ValueError):
            return None
        return dict(zip(("exit", "exc_type", "result", "error"), values, strict=True))

    def texts(self) -> tuple[str, str, bool]:
        """Return (stdout, stderr, truncated), together at most max_bytes, decoded with replacement."""
        out, err = bytes(self.stdout), bytes(self.stderr)
        truncated = len(out) + len(err) > self.max_bytes
        if truncated:
            err = err[: min(len(err), self.max_bytes // 4)]
            out = out[: self.max_bytes - len(err)]
        return out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), truncated


async def pump(stream: asyncio.StreamReader, feed: Any) -> None:
    """Read a stream to EOF in bounded chunks, handing each to feed."""
    while chunk := await stream.read(CHUNK):
        feed(chunk)
