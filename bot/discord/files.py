"""Discord attachments: message attachments -> IncomingFile, and a fetcher that downloads them.

Attachment URLs are signed CDN links that need no credentials, but they come from a message, so the
fetcher downloads only from Discord's CDN (plus DISCORD_CDN_URL's origin, for a proxy or the tests'
fake): a URL elsewhere would turn the bot into a client for any host its network reaches.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from bot.downloads import DownloadLimits, Origin, download, origin_of
from core.files_in import FetchError
from core.settings import ConfigError
from core.types import IncomingFile

DISCORD_CDN_ORIGINS = frozenset(
    {Origin("https", "cdn.discordapp.com", 443), Origin("https", "media.discordapp.net", 443)}
)
MAX_FILES_PER_MESSAGE = 20  # Discord allows 10 attachments per message
_NAME_MAX = 1024  # the core sanitises and shortens; this only bounds what we carry


class AttachmentLike(Protocol):
    """The fields of discord.Attachment the bot reads."""

    filename: str
    url: str
    size: int
    content_type: str | None


def cdn_origins(cdn_url: str | None) -> frozenset[Origin]:
    """Where attachments may be downloaded from: Discord's CDN hosts, plus DISCORD_CDN_URL's origin."""
    if not cdn_url:
        return DISCORD_CDN_ORIGINS
    try:
        return DISCORD_CDN_ORIGINS | {Origin.of(cdn_url)}
    except ValueError:
        raise ConfigError(f"DISCORD_CDN_URL must be an http(s) URL, not {cdn_url[:80]!r}") from None


def incoming_files(attachments: Iterable[AttachmentLike]) -> tuple[IncomingFile, ...]:
    """The message's attachments as the core should see them (names unsanitised: the core does that)."""
    files = []
    for a in list(attachments)[:MAX_FILES_PER_MESSAGE]:
        size = a.size if isinstance(a.size, int) and a.size >= 0 else None
        files.append(
            IncomingFile(str(a.filename)[:_NAME_MAX], str(a.url), size, (a.content_type or "")[:200])
        )
    return tuple(files)


class DiscordFileFetcher:
    """Download attachments from Discord's CDN, without credentials (core FileFetcher)."""

    def __init__(self, origins: frozenset[Origin], limits: DownloadLimits | None = None) -> None:
        self._origins = origins
        self._limits = limits or DownloadLimits()

    async def fetch(self, file: IncomingFile, max_bytes: int) -> bytes:
        """Return the file's bytes; FileTooLarge past `max_bytes`, FetchError otherwise."""
        if origin_of(file.ref) not in self._origins:
            raise FetchError("it is not on Discord's CDN, so it was not downloaded")
        return await download(file, max_bytes, {}, self._limits)
