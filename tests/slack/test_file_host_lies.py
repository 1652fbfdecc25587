"""A file host that breaks HTTP's promises (raw sockets): the Slack fetcher stays bounded and never hangs.

aiohttp's own server cannot send a Content-Length that disagrees with the body, so these answers are
written byte for byte. The host is let in as if it were SLACK_API_URL's, so the token would go there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from bot.downloads import DownloadLimits
from bot.slack.files import SlackFileFetcher, file_origins
from core.files_in import FetchError, FileTooLarge
from core.types import IncomingFile

MB = 1024 * 1024


@asynccontextmanager
async def raw_host(head: bytes, body: bytes, *, stall: bool = False) -> AsyncIterator[str]:
    """Answer every request with `head` + `body` as given (then hang if `stall`)."""
    release = asyncio.Event()
    handlers: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(head + body)
            await writer.drain()
            if stall:
                await release.wait()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client hung up, as it should once it has seen enough
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        release.set()
        server.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


def fetcher(host: str, **limits: float) -> SlackFileFetcher:
    return SlackFileFetcher("xoxb-test-token", file_origins(f"{host}/api/"), DownloadLimits(**limits))


def file_at(host: str, size: int | None = 10) -> IncomingFile:
    return IncomingFile("data.csv", f"{host}/files-pri/T1-F1/download/data.csv", size, "text/csv")


async def test_a_content_length_smaller_than_the_body_never_reads_past_what_it_declared():
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: 10\r\nConnection: close\r\n\r\n"
    async with raw_host(head, b"a,b\n1,2\n3," + b"9" * (3 * MB)) as host:
        try:
            got = await fetcher(host).fetch(file_at(host), MB)
        except FetchError:  # aiohttp may also see the extra bytes arrive and call the response broken
            return
        assert got == b"a,b\n1,2\n3,"


async def test_a_content_length_over_the_cap_is_refused_before_the_body_is_read():
    head = f"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: {50 * MB}\r\n\r\n".encode()
    async with raw_host(head, b"x" * 1024, stall=True) as host:
        with pytest.raises(FileTooLarge):
            await fetcher(host).fetch(file_at(host), MB)


async def test_a_body_without_any_length_is_stopped_at_the_cap():
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nConnection: close\r\n\r\n"
    async with raw_host(head, b"x" * (3 * MB)) as host:
        with pytest.raises(FileTooLarge):
            await fetcher(host).fetch(file_at(host, size=None), MB)


async def test_a_compressed_body_is_refused_so_it_cannot_expand_past_the_count():
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\n"
    async with raw_host(head, b"\x1f\x8b\x08\x00") as host:
        with pytest.raises(FetchError, match="encoding"):
            await fetcher(host).fetch(file_at(host), MB)


async def test_a_host_that_stops_sending_is_given_up_on():
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: 100\r\n\r\n"
    async with raw_host(head, b"a,b\n", stall=True) as host:
        with pytest.raises(FetchError, match="the download failed: ") as caught:
            await fetcher(host, read_s=0.5).fetch(file_at(host), MB)
        assert host not in str(caught.value)  # the message reaches the user: no URL in it
