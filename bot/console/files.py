"""The console's FileFetcher: local files named with `--attach` or `/attach`, read under the caps."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import BinaryIO

from core.files_in import FetchError, FileTooLarge
from core.types import IncomingFile

CHUNK = 1024 * 1024


def local_file(path: str | Path) -> IncomingFile:
    """Describe a local file to attach; its size is only a hint (the fetch enforces the cap)."""
    p = Path(path).expanduser()
    try:
        size: int | None = p.stat().st_size
    except OSError:
        size = None  # the fetch reports the problem in the thread, like any other fetch failure
    return IncomingFile(name=p.name or str(p), ref=str(p), size=size)


class ConsoleFetcher:
    """Reads attached files from the local disk, in chunks, never more than the cap plus one chunk."""

    async def fetch(self, file: IncomingFile, max_bytes: int) -> bytes:
        """Return the file's bytes; FileTooLarge past `max_bytes`, FetchError when it cannot be read."""
        return await asyncio.to_thread(_read, file.ref, file.name, max_bytes)


def _read(path: str, name: str, max_bytes: int) -> bytes:
    try:
        # O_NONBLOCK: opening a FIFO must not hang the reader; it is refused below as not a regular file.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise FetchError(f"{name}: no such file") from None
    except OSError as exc:
        raise FetchError(f"{name}: {exc.strerror or 'cannot be opened'}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FetchError(f"{name}: not a regular file")
        os.set_blocking(fd, True)
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        try:
            return _read_capped(fh, name, max_bytes)
        except OSError as exc:
            raise FetchError(f"{name}: {exc.strerror or 'cannot be read'}") from None


def _read_capped(fh: BinaryIO, name: str, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while chunk := fh.read(min(CHUNK, max_bytes + 1 - total)):
        total += len(chunk)
        if total > max_bytes:  # the file grew past the cap (or its size lied): stop here
            raise FileTooLarge(name, max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)
