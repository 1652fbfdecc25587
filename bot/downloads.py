"""Bounded HTTP download of one chat attachment, shared by the Slack and Discord file fetchers.

The URL comes from a chat event and the server may lie, so: the caller has already checked the host;
no redirect is followed (a redirect could carry the credentials elsewhere); the size is checked against
the declared Content-Length and again while streaming, so nothing beyond the cap is ever buffered; the
body is asked for and accepted only without content encoding, so a small compressed body cannot expand
past what we counted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from core.files_in import FetchError, FileTooLarge
from core.types import IncomingFile

CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class Origin:
    """A scheme, host and port a fetcher may download from (and send its credentials to)."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Origin:
        """The origin of `url`; ValueError if it has no http(s) scheme or no host."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url[:80]!r}")
        return cls(scheme, parts.hostname.lower(), parts.port or (443 if scheme == "https" else 80))


def origin_of(url: str) -> Origin | None:
    """The origin of an untrusted URL, or None when it is not a plain http(s) URL."""
    try:
        return Origin.of(url)
    except ValueError:  # also a bad port number
        return None


@dataclass(frozen=True)
class DownloadLimits:
    """Timeouts of one download; the byte cap comes from the core with each request."""

    total_s: float = 120.0  # 20 MB over a slow link still fits
    connect_s: float = 10.0
    read_s: float = 30.0  # longest silence between two chunks


async def download(
    file: IncomingFile,
    max_bytes: int,
    headers: Mapping[str, str],
    limits: DownloadLimits,
    *,
    html_is_error: str | None = None,
) -> bytes:
    """Download `file.ref` (its origin already vetted) into memory, at most `max_bytes`.

    `html_is_error`: when set and the server answers text/html for a file that is not HTML, raise
    FetchError with this text (Slack's login page instead of the file).
    """
    if file.size is not None and file.size > max_bytes:
        raise FileTooLarge(file.name, max_bytes)
    timeout = aiohttp.ClientTimeout(
        total=limits.total_s, sock_connect=limits.connect_s, sock_read=limits.read_s
    )
    try:
        # A session per download: attachments are rare, and nothing outlives the call.
        async with (
            aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session,
            session.get(
                file.ref, headers={**headers, "Accept-Encoding": "identity"}, allow_redirects=False
            ) as resp,
        ):
            _check_response(file, resp, max_bytes, html_is_error)
            return await _read_capped(file, resp, max_bytes)
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        # Never echo the URL or headers: the message reaches the user.
        raise FetchError(f"the download failed: {type(exc).__name__}") from None


def _check_response(
    file: IncomingFile, resp: aiohttp.ClientResponse, max_bytes: int, html_is_error: str | None
) -> None:
    if 300 <= resp.status < 400:
        raise FetchError("the file host redirected elsewhere; not followed")
    if resp.status != 200:
        raise FetchError(f"the file host answered HTTP {resp.status}")
    if resp.headers.get("Content-Encoding", "identity").lower() not in ("", "identity"):
        raise FetchError("the file host sent a compressed body (content encoding)")
    if resp.content_length is not None and resp.content_length > max_bytes:
        raise FileTooLarge(file.name, max_bytes)
    if html_is_error and resp.content_type == "text/html" and "html" not in file.mimetype.lower():
        raise FetchError(html_is_error)


async def _read_capped(file: IncomingFile, resp: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
        total += len(chunk)
        if total > max_bytes:  # a missing or lying Content-Length: stop at the cap
            raise FileTooLarge(file.name, max_bytes)
        parts.append(chunk)
    return b"".join(parts)
