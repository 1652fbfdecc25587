"""Files shared in Slack: event file objects -> IncomingFile, and a fetcher that downloads them.

The bot token must reach only Slack's file host. A file URL is an event field: events are signed, but
one forged or odd URL must not make the bot send `Authorization: Bearer xoxb-…` anywhere else, so the
fetcher refuses any other origin outright and follows no redirect (bot/downloads.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from bot.downloads import DownloadLimits, Origin, download, origin_of
from core.files_in import FetchError
from core.settings import ConfigError
from core.types import IncomingFile

SLACK_FILE_ORIGIN = Origin("https", "files.slack.com", 443)
_DEFAULT_API_HOST = "slack.com"
# Private file URLs live under /files-pri/; with the token, any other path on an allowed host (the
# API host behind a proxy) could be a Web API method, so only this prefix is fetched.
_FILE_PATH = "/files-pri/"
MAX_FILES_PER_MESSAGE = 20  # Slack allows 10 per message today; more is not a message from Slack
_NAME_MAX = 1024  # the core sanitises and shortens; this only bounds what we carry

LOGIN_PAGE = (
    "Slack sent a web page instead of {name}: the app needs the files:read scope (reinstall it "
    "from the updated manifest)"
)


def file_origins(api_url: str) -> frozenset[Origin]:
    """Where the bot token may be sent for downloads: files.slack.com, or SLACK_API_URL's host.

    SLACK_API_URL pointing elsewhere (a proxy, the tests' fake) means files are served there too.
    """
    try:
        api = Origin.of(api_url)
    except ValueError:
        raise ConfigError(f"SLACK_API_URL must be an http(s) URL, not {api_url[:80]!r}") from None
    if api.host == _DEFAULT_API_HOST:
        return frozenset({SLACK_FILE_ORIGIN})
    return frozenset({SLACK_FILE_ORIGIN, api})


def incoming_files(event: Mapping[str, Any]) -> tuple[IncomingFile, ...]:
    """The files of a message or app_mention event, as the core should see them (untrusted, bounded).

    A file Slack does not let us download (external, deleted, or only a stub in this event) keeps an
    empty ref, so the core can tell the user it was not used rather than drop it silently.
    """
    raw = event.get("files")
    if not isinstance(raw, list):
        return ()
    objects = [f for f in raw[: MAX_FILES_PER_MESSAGE * 2] if isinstance(f, Mapping)]
    return tuple(_one(f) for f in objects[:MAX_FILES_PER_MESSAGE])


def _one(f: Mapping[str, Any]) -> IncomingFile:
    name = f.get("name") or f.get("title") or f.get("id") or "file"
    ref = f.get("url_private_download")
    size = f.get("size")
    mimetype = f.get("mimetype")
    return IncomingFile(
        name=str(name)[:_NAME_MAX],
        ref=ref if isinstance(ref, str) and f.get("mode") != "tombstone" else "",
        size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
        mimetype=mimetype[:200] if isinstance(mimetype, str) else "",
    )


class SlackFileFetcher:
    """Download Slack files with the bot token, only from Slack's file host (core FileFetcher)."""

    def __init__(self, token: str, origins: frozenset[Origin], limits: DownloadLimits | None = None) -> None:
        self._token = token
        self._origins = origins
        self._limits = limits or DownloadLimits()

    async def fetch(self, file: IncomingFile, max_bytes: int) -> bytes:
        """Return the file's bytes; FileTooLarge past `max_bytes`, FetchError otherwise."""
        if not file.ref:
            raise FetchError(f"Slack does not let the bot download {file.name} (external or deleted file)")
        if origin_of(file.ref) not in self._origins or not urlsplit(file.ref).path.startswith(_FILE_PATH):
            raise FetchError(f"{file.name} is not on Slack's file host; not downloaded")
        return await download(
            file,
            max_bytes,
            {"Authorization": f"Bearer {self._token}"},
            self._limits,
            html_is_error=LOGIN_PAGE.format(name=file.name),
        )
