"""Files shared in Slack: event file objects -> Incoming.files, and downloads that keep the token home.

The fetcher runs for real against the fake's file host over HTTP; a second local server stands in for
"another host" that must never see the bot token.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from bot.downloads import Origin
from bot.slack import events
from bot.slack.files import (
    SLACK_FILE_ORIGIN,
    SlackFileFetcher,
    complete_files,
    file_origins,
    scope_warning,
)
from core.files_in import FetchError, FileTooLarge
from core.settings import ConfigError
from core.types import Author, IncomingFile
from tests.slack.payloads import mention, message
from tests.slack.stack import slack_stack

TOKEN = "xoxb-test-token"  # what FakeSlack's file host accepts, and what tests/slack/stack.py configures
CSV = b"city,temp\nOslo,4\nLima,19\n"
MB = 1024 * 1024


def fetcher_for(slack: Any, token: str = TOKEN) -> SlackFileFetcher:
    return SlackFileFetcher(token, file_origins(slack.base_url))


def as_incoming(obj: dict[str, Any]) -> IncomingFile:
    (file,) = events.incoming_files({"files": [obj]})
    return file


@asynccontextmanager
async def other_host() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """Another origin (its own port) that records the headers of every request it gets."""
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(body=b"stolen?", content_type="text/csv")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


# ---- event payloads -> IncomingFile ---------------------------------------------------------------


async def test_a_mention_with_files_becomes_incoming_files_with_the_name_unchanged(slack):
    shared = [slack.share_file("../../x.csv", CSV), slack.share_file("pic.png", b"\x89PNG", "image/png")]
    body = mention("what is in these?", files=shared)
    incoming = events.to_incoming(body, body["event"], "UBOT", Author("U123", "ann"))
    first, second = incoming.files
    assert first == IncomingFile("../../x.csv", shared[0]["url_private_download"], len(CSV), "text/csv")
    assert (second.name, second.size, second.mimetype) == ("pic.png", 4, "image/png")
    assert incoming.text == "what is in these?"


def test_odd_file_objects_are_bounded_and_never_raise():
    files = events.incoming_files(
        {
            "files": [
                {"id": "F1", "mode": "tombstone", "url_private_download": "https://files.slack.com/x"},
                {"id": "F2", "mode": "external", "name": "doc", "size": True, "mimetype": 5},
                {"id": "F3", "name": "n" * 5000, "size": -1, "url_private_download": 7},
                "not an object",
            ]
            + [{"id": f"F{i}", "name": "a.csv"} for i in range(50)]
        }
    )
    assert files[0] == IncomingFile("F1", "", None, "")  # deleted: kept so the core can say so
    assert files[1] == IncomingFile("doc", "", None, "")
    assert (len(files[2].name), files[2].size, files[2].ref) == (1024, None, "")
    assert len(files) == 20
    assert events.incoming_files({"files": "nope"}) == events.incoming_files({}) == ()


async def test_slack_connect_stubs_are_completed_with_files_info(slack, web_client):
    plain = slack.share_file("a.csv", CSV)
    assert await complete_files({"files": [plain]}, web_client.files_info) == {"files": [plain]}
    assert await complete_files({"text": "no files"}, web_client.files_info) == {"text": "no files"}
    assert slack.calls_to("files.info") == []  # nothing to look up: no API call
    stub = slack.share_file("b.csv", CSV, connect_stub=True)
    gone = {"id": "F9999", "mode": "file_access", "file_access": "check_file_info"}
    event = await complete_files({"files": [plain, stub, gone]}, web_client.files_info)
    _, b, missing = events.incoming_files(event)
    assert (b.name, b.size, b.ref) == (
        "b.csv",
        len(CSV),
        slack.file_objects[stub["id"]]["url_private_download"],
    )
    assert missing == IncomingFile("F9999", "", None, "")  # not found: the core says it was not used
    assert [c.params["file"] for c in slack.calls_to("files.info")] == [stub["id"], "F9999"]


def test_file_share_follow_ups_are_questions_but_other_subtypes_stay_ignored():
    share = {"type": "message", "subtype": "file_share", "user": "U1", "text": "", "ts": "2.2"}
    in_thread = {**share, "thread_ts": "1.1", "channel": "C1"}
    assert events.message_needs_thread_check(in_thread, "UBOT")
    assert not events.message_needs_thread_check({**share, "channel": "C1"}, "UBOT")  # top level
    for subtype in ("message_changed", "message_deleted", "bot_message", "channel_join"):
        assert not events.message_needs_thread_check({**in_thread, "subtype": subtype}, "UBOT")


# ---- the fetcher against the fake file host ---------------------------------------------------------


async def test_the_token_goes_to_the_file_host_and_the_bytes_come_back(slack):
    file = as_incoming(slack.share_file("data.csv", CSV))
    assert await fetcher_for(slack).fetch(file, MB) == CSV
    (request,) = slack.file_requests
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


async def test_without_files_read_slack_sends_its_login_page_which_is_an_error_not_a_file(slack):
    file = as_incoming(slack.share_file("data.csv", CSV))
    with pytest.raises(FetchError, match="files:read"):
        await fetcher_for(slack, token="xoxb-lacks-files-read").fetch(file, MB)
    assert TOKEN not in str(slack.file_requests[0].headers.get("Authorization"))


async def test_a_user_shared_html_file_is_still_a_file(slack):
    page = b"<html><body>report</body></html>"
    file = as_incoming(slack.share_file("report.html", page, "text/html"))
    assert await fetcher_for(slack).fetch(file, MB) == page


async def test_a_redirect_to_another_host_is_not_followed_so_the_token_stays_home(slack):
    async with other_host() as (elsewhere, seen):
        file = as_incoming(slack.share_file("data.csv", CSV, redirect_to=f"{elsewhere}/grab"))
        with pytest.raises(FetchError, match="redirect"):
            await fetcher_for(slack).fetch(file, MB)
        assert len(slack.file_requests) == 1  # the file host was asked, and answered 302
        assert not any("Authorization" in h for h in seen)
        assert seen == []


async def test_a_file_url_on_another_host_is_never_requested(slack):
    async with other_host() as (elsewhere, seen):
        file = IncomingFile("data.csv", f"{elsewhere}/files-pri/T111-F1/download/data.csv", 10, "text/csv")
        with pytest.raises(FetchError, match="not on Slack's file host"):
            await fetcher_for(slack).fetch(file, MB)
        api_method = f"http://127.0.0.1:{slack.port}/api/chat.postMessage?channel=C1&text=hi"
        for ref in ("file:///etc/passwd", "ftp://files.slack.com/x", "files.slack.com/x", "", api_method):
            with pytest.raises(FetchError):
                await fetcher_for(slack).fetch(IncomingFile("x", ref), MB)
        assert seen == [] and slack.calls == []


async def test_a_declared_size_over_the_cap_is_refused_before_any_download(slack):
    file = as_incoming(slack.share_file("big.csv", b"x" * (2 * MB)))
    with pytest.raises(FileTooLarge) as caught:
        await fetcher_for(slack).fetch(file, MB)
    assert caught.value.limit_bytes == MB and "1 MB" in str(caught.value)
    assert slack.file_requests == []


async def test_a_size_lie_in_the_event_is_caught_by_content_length(slack):
    file = as_incoming(slack.share_file("big.csv", b"x" * (3 * MB), declared_size=10))
    assert file.size == 10
    with pytest.raises(FileTooLarge):
        await fetcher_for(slack).fetch(file, MB)


async def test_a_chunked_body_without_length_is_stopped_at_the_cap(slack):
    file = as_incoming(slack.share_file("big.csv", b"x" * (8 * MB), declared_size=10, chunked=True))
    with pytest.raises(FileTooLarge):
        await fetcher_for(slack).fetch(file, MB)
    small = as_incoming(slack.share_file("ok.csv", CSV * 1000, chunked=True))
    assert await fetcher_for(slack).fetch(small, MB) == CSV * 1000


def test_the_token_may_go_only_to_files_slack_com_or_the_configured_api_host():
    assert file_origins("https://slack.com/api/") == {SLACK_FILE_ORIGIN}
    assert file_origins("https://slack-gov.com/api/") == {Origin("https", "files.slack-gov.com", 443)}
    assert file_origins("http://127.0.0.1:8080/api/") == {
        SLACK_FILE_ORIGIN,
        Origin("http", "127.0.0.1", 8080),
    }
    with pytest.raises(ConfigError, match="SLACK_API_URL"):
        file_origins("slack.com/api")


# ---- the adapter hands the files and its fetcher to the core ---------------------------------------


async def test_mentions_and_thread_file_shares_reach_the_core_with_a_working_fetcher(tmp_path, slack):
    async with slack_stack(tmp_path, slack) as s:
        submitted: list[tuple[Any, Any]] = []
        real_submit = s.core.submit

        async def recording_submit(incoming: Any, sink: Any, fetcher: Any = None) -> Any:
            submitted.append((incoming, fetcher))
            return await real_submit(incoming, sink, fetcher)

        s.core.submit = recording_submit  # type: ignore[method-assign]
        root = "1700000001.000100"
        shared = [
            slack.share_file("temps.csv", CSV),
            slack.share_file("shared.csv", CSV, connect_stub=True),  # a Slack Connect channel
        ]
        body = mention("mean temp?", ts=root, files=shared)
        s.llm.enqueue_text("About 11.5.")
        await s.event(body)
        await slack.wait_for(lambda: "About 11.5." in s.thread("C1", root))
        await s.core.wait_idle(10)
        s.llm.enqueue_text("Got the second file.")
        share = message(
            "and this one?", thread_ts=root, subtype="file_share", files=[slack.share_file("more.csv", CSV)]
        )
        await s.event(share)
        await slack.wait_for(lambda: "Got the second file." in s.thread("C1", root))
        await s.core.wait_idle(10)
        edit = message("", thread_ts=root, subtype="message_changed", files=[slack.share_file("e.csv", CSV)])
        await s.event(edit)
        await s.core.wait_idle(10)

    assert [[f.name for f in inc.files] for inc, _ in submitted] == [
        ["temps.csv", "shared.csv"],
        ["more.csv"],
    ]
    for incoming, fetcher in submitted:
        for file in incoming.files:
            assert await fetcher.fetch(file, MB) == CSV
    assert {r.headers["Authorization"] for r in slack.file_requests} == {f"Bearer {TOKEN}"}


async def test_a_token_without_files_read_is_named_at_start_up(tmp_path, slack, caplog):
    slack.scopes.remove("files:read")
    with caplog.at_level(logging.WARNING, logger="bot.slack.app"):
        async with slack_stack(tmp_path, slack) as s:
            with pytest.raises(FetchError, match="files:read"):  # and downloads get the sign-in page
                await s.bot.files.fetch(as_incoming(slack.share_file("a.csv", CSV)), MB)
    assert any("lacks the files:read scope" in r.getMessage() for r in caplog.records)
    assert scope_warning({"X-OAuth-Scopes": "chat:write, files:read"}) is None
    assert scope_warning({}) is None  # a proxy that strips the header: the download will say it
