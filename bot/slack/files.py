"""Files shared in Slack: completing Slack Connect stubs, and a fetcher that downloads the files.

The bot token must reach only Slack's file host. A file URL is an event field: events are signed, but
one forged or odd URL must not make the bot send `Authorization: Bearer xoxb-…` anywhere else, so the
fetcher refuses any other origin outright and follows no redirect (bot/downloads.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

from bot.downloads import DownloadLimits, Origin, download, origin_of
from bot.slack.events import MAX_FILES_PER_MESSAGE, is_stub_file
from bot.slack.thread import SLACK_FAILURES, slack_error
from core.files_in import FetchError
from core.settings import ConfigError
from core.types import IncomingFile

log = logging.getLogger(__name__)

SLACK_FILE_ORIGIN = Origin("https", "files.slack.com", 443)
# Slack's own API hosts and where each serves files (GovSlack is a separate deployment).
_OWN_FILE_HOSTS = {
    "slack.com": SLACK_FILE_ORIGIN,
    "slack-gov.com": Origin("https", "files.slack-gov.com", 443),
}
# Private file URLs live under /files-pri/; with the token, any other path on an allowed host (the
# API host behind a proxy) could be a Web API method, so only this prefix is fetched.
_FILE_PATH = "/files-pri/"

LOGIN_PAGE = (
    "Slack sent its sign-in page instead of the file: the app needs the files:read scope "
    "(reinstall it from the updated manifest)"
)


def file_origins(api_url: str) -> frozenset[Origin]:
    """Where the bot token may be sent for downloads: files.slack.com, or SLACK_API_URL's host.

    GovSlack (https://slack-gov.com/api/) serves its files from files.slack-gov.com.

    SLACK_API_URL pointing elsewhere (a proxy, the tests' fake) means files are served there too.
    """
    try:
        api = Origin.of(api_url)
    except ValueError:
        raise ConfigError(f"SLACK_API_URL must be an http(s) URL, not {api_url[:80]!r}") from None
    own = _OWN_FILE_HOSTS.get(api.host)
    if own is not None and api.scheme == "https":
        return frozenset({own})
    return frozenset({SLACK_FILE_ORIGIN, api})


SCOPE_MISSING = (
    "SLACK_BOT_TOKEN lacks the files:read scope: files attached to questions cannot be downloaded. "
    "Add it (see slack-manifest.yaml) and reinstall the app."
)


def scope_warning(headers: Mapping[str, Any]) -> str | None:
    """A warning when Slack's granted scopes (x-oauth-scopes on any Web API answer) lack files:read.

    None when the header is absent (proxies may strip it): the download itself reports the problem.
    """
    raw = next((v for k, v in headers.items() if str(k).lower() == "x-oauth-scopes"), None)
    if isinstance(raw, list):  # slack_sdk keeps repeated headers as lists
        raw = ",".join(map(str, raw))
    if not isinstance(raw, str):
        return None
    return None if "files:read" in {s.strip() for s in raw.split(",")} else SCOPE_MISSING


class FilesInfo(Protocol):
    """The one Web API call used here (AsyncWebClient.files_info)."""

    async def __call__(self, *, file: str) -> Any: ...


async def complete_files(event: Mapping[str, Any], files_info: FilesInfo) -> Mapping[str, Any]:
    """Fill in stub file objects (Slack Connect sends only an id: `file_access: check_file_info`).

    Returns the event with each stub replaced by files.info's object; a stub that cannot be looked up
    stays as it is (the core then tells the user that file was not used). At most MAX_FILES lookups.
    """
    raw = event.get("files")
    if not isinstance(raw, list) or not any(is_stub_file(f) for f in raw[:MAX_FILES_PER_MESSAGE]):
        return event
    completed = [await _look_up(f, files_info) if is_stub_file(f) else f for f in raw[:MAX_FILES_PER_MESSAGE]]
    return {**event, "files": completed}


async def _look_up(stub: Mapping[str, Any], files_info: FilesInfo) -> Mapping[str, Any]:
    fid = stub.get("id")
    if not isinstance(fid, str) or not fid:
        return stub
    try:
        resp = await files_info(file=fid)
    except SLACK_FAILURES as exc:
        log.info("files.info %s failed: %s", fid, slack_error(exc))
        return stub
    file = resp.get("file")
    ok = isinstance(file, Mapping) and file.get("id") == fid and not is_stub_file(file)
    return file if ok else stub


class SlackFileFetcher:
    """Download Slack files with the bot token, only from Slack's file host (core FileFetcher)."""

    def __init__(self, token: str, origins: frozenset[Origin], limits: DownloadLimits | None = None) -> None:
        self._token = token
        self._origins = origins
        self._limits = limits or DownloadLimits()

    async def fetch(self, file: IncomingFile, max_bytes: int) -> bytes:
        """Return the file's bytes; FileTooLarge past `max_bytes`, FetchError otherwise."""
        if not file.ref:
            raise FetchError("Slack does not let the bot download it (an external or deleted file)")
        if origin_of(file.ref) not in self._origins or not urlsplit(file.ref).path.startswith(_FILE_PATH):
            raise FetchError("it is not on Slack's file host, so it was not downloaded")
        return await download(
            file,
            max_bytes,
            {"Authorization": f"Bearer {self._token}"},
            self._limits,
            html_is_error=LOGIN_PAGE,
        )
