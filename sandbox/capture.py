"""Bounded capture of a run's stdout and stderr, read from the host's own pipes.

stdout and stderr carry nothing but the code's own bytes (the report travels on its own fd), so every
byte counts against the cap, and the run is stopped the moment they pass it; nothing is ever buffered
without bound. The pipes are the host's own (not asyncio's subprocess pipes), so a run can end at the
supervisor's report while bwrap, which also holds the write ends, is reaped in the background.
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import os
import termios
from collections.abc import Callable
from dataclasses import dataclass, field

DRAIN_ROUNDS = 1000  # loop turns to deliver what is left in the pipes (each turn reads up to 256 KiB)


@dataclass
class Capture:
    """Collects both streams of one run; `overflow` is set once their bytes together pass max_bytes."""

    max_bytes: int
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    overflow: asyncio.Event = field(default_factory=asyncio.Event)

    def reset(self, max_bytes: int) -> None:
        """Start counting afresh (what the pre-imports printed is not the run's output)."""
        self.max_bytes = max_bytes
        self.stdout.clear()
        self.stderr.clear()
        self.overflow.clear()

    def feed_stdout(self, chunk: bytes) -> None:
        self.stdout += chunk
        self._check()

    def feed_stderr(self, chunk: bytes) -> None:
        self.stderr += chunk
        self._check()

    def _check(self) -> None:
        # keep at most one cap's worth per stream beyond the cap, then ask for the kill
        if len(self.stdout) + len(self.stderr) > self.max_bytes:
            del self.stdout[self.max_bytes + 1 :]
            del self.stderr[self.max_bytes + 1 :]
            self.overflow.set()

    def texts(self) -> tuple[str, str, bool]:
        """Return (stdout, stderr, truncated), together at most max_bytes, decoded with replacement."""
        out, err = bytes(self.stdout), bytes(self.stderr)
        truncated = len(out) + len(err) > self.max_bytes
        if truncated:
            err = err[: min(len(err), self.max_bytes // 4)]
            out = out[: self.max_bytes - len(err)]
        return out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), truncated


class _Feed(asyncio.Protocol):
    """Hands every chunk read from a pipe straight to a feed function (no buffer in between)."""

    def __init__(self, feed: Callable[[bytes], None], closed: asyncio.Event) -> None:
        self._feed, self._closed = feed, closed

    def data_received(self, data: bytes) -> None:
        self._feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed.set()


@dataclass
class Output:
    """The read ends of a sandbox's stdout and stderr pipes, feeding one Capture."""

    cap: Capture
    fds: tuple[int, int]
    transports: list[asyncio.BaseTransport] = field(default_factory=list)
    closed: tuple[asyncio.Event, asyncio.Event] = field(
        default_factory=lambda: (asyncio.Event(), asyncio.Event())
    )

    @classmethod
    async def open(cls, out_fd: int, err_fd: int, max_bytes: int) -> Output:
        """Start reading both pipes (this takes ownership of the fds, also on failure)."""
        loop = asyncio.get_running_loop()
        output = cls(Capture(max_bytes), (out_fd, err_fd), [], (asyncio.Event(), asyncio.Event()))
        feeds = (output.cap.feed_stdout, output.cap.feed_stderr)
        pipes = [os.fdopen(fd, "rb", buffering=0) for fd in output.fds]
        try:
            for pipe, feed, closed in zip(pipes, feeds, output.closed, strict=True):
                transport, _ = await loop.connect_read_pipe(_factory(feed, closed), pipe)
                output.transports.append(transport)
        except BaseException:
            output.close()
            for pipe in pipes[len(output.transports) :]:
                pipe.close()
            raise
        return output

    async def drain(self) -> None:
        """Deliver every byte still in the pipes (call once no writer is left: the code is dead)."""
        for _ in range(DRAIN_ROUNDS):
            pending = (fd for fd, done in zip(self.fds, self.closed, strict=True) if not done.is_set())
            if not any(_unread(fd) for fd in pending):
                return
            await asyncio.sleep(0)

    def close(self) -> None:
        for transport in self.transports:
            transport.close()


def _factory(feed: Callable[[bytes], None], closed: asyncio.Event) -> Callable[[], _Feed]:
    return lambda: _Feed(feed, closed)


def _unread(fd: int) -> int:
    buf = array.array("i", [0])
    try:
        fcntl.ioctl(fd, termios.FIONREAD, buf)
    except OSError:  # closed meanwhile
        return 0
    return buf[0]
