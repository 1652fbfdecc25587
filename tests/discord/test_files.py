"""Discord attachments: message attachments -> Incoming.files, and downloads only from the CDN, capped.

The fetcher runs for real against the fake's CDN route over HTTP; the adapter test drives real
discord.py over the fake gateway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import discord
import pytest
from aiohttp import web

from bot.discord.files import DISCORD_CDN_ORIGINS, DiscordFileFetcher, cdn_origins, incoming_files
from bot.downloads import Origin
from core.files_in import FetchError, FileTooLarge
from core.settings import ConfigError
from core.types import IncomingFile
from tests.discord.stack import DiscordStack, bot_settings, running_bot
from tests.fakes.discord_fake import FakeDiscord
from tests.fakes.openai_fake import FakeOpenAI
from tests.harness import core_stack

CSV = b"city,temp\nOslo,4\nLima,19\n"
MB = 1024 * 1024


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    f = FakeDiscord()
    await f.start()
    try:
        yield f
    finally:
        await f.stop()


def fetcher_for(fake: FakeDiscord) -> DiscordFileFetcher:
    return DiscordFileFetcher(cdn_origins(fake.cdn_base))


def as_incoming(obj: dict[str, Any]) -> IncomingFile:
    """The IncomingFile discord.py's own Attachment parsing leads to."""
    state = SimpleNamespace(http=None)  # Attachment keeps it only for its own save()/read()
    (file,) = incoming_files([discord.Attachment(data=obj, state=state)])  # type: ignore[arg-type]
    return file


@asynccontextmanager
async def other_host() -> AsyncIterator[tuple[str, list[str]]]:
    """Another origin (its own port) that records the path of every request it gets."""
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(body=b"x", content_type="text/csv")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


# ---- attachments -> IncomingFile ----------------------------------------------------------------


async def test_attachments_become_incoming_files_with_the_name_unchanged(fake):
    obj = fake.attachment("../../x.csv", CSV)
    assert as_incoming(obj) == IncomingFile("../../x.csv", obj["url"], len(CSV), "text/csv")
    untyped = as_incoming(fake.attachment("blob", b"\x00\x01", content_type=None))
    assert untyped.mimetype == "" and untyped.size == 2


def test_only_discords_cdn_and_the_configured_origin_are_allowed():
    assert cdn_origins(None) == cdn_origins("") == DISCORD_CDN_ORIGINS
    assert Origin("https", "cdn.discordapp.com", 443) in DISCORD_CDN_ORIGINS
    assert cdn_origins("http://127.0.0.1:9000/") == DISCORD_CDN_ORIGINS | {Origin("http", "127.0.0.1", 9000)}
    with pytest.raises(ConfigError, match="DISCORD_CDN_URL"):
        cdn_origins("cdn.example")


# ---- the fetcher against the fake CDN ------------------------------------------------------------


async def test_an_attachment_is_downloaded_from_the_cdn_without_credentials(fake):
    file = as_incoming(fake.attachment("data.csv", CSV))
    assert await fetcher_for(fake).fetch(file, MB) == CSV
    (request,) = fake.cdn_requests
    assert "Authorization" not in request.headers
    assert fake.token not in str(request.headers)


async def test_an_expired_or_unsigned_link_is_an_error(fake):
    obj = fake.attachment("data.csv", CSV)
    unsigned = IncomingFile("data.csv", obj["url"].split("?")[0], len(CSV), "text/csv")
    with pytest.raises(FetchError, match="404"):
        await fetcher_for(fake).fetch(unsigned, MB)


async def test_urls_off_the_cdn_are_never_requested_and_redirects_not_followed(fake):
    async with other_host() as (elsewhere, seen):
        with pytest.raises(FetchError, match="not on Discord's CDN"):
            await fetcher_for(fake).fetch(IncomingFile("a.csv", f"{elsewhere}/attachments/1/2/a.csv"), MB)
        for ref in (
            "file:///etc/passwd",
            "https://cdn.discordapp.com.evil.example/a",
            "",
            "http://cdn.discordapp.com/a",
        ):
            with pytest.raises(FetchError):
                await DiscordFileFetcher(DISCORD_CDN_ORIGINS).fetch(IncomingFile("a", ref), MB)
        moved = as_incoming(fake.attachment("a.csv", CSV, redirect_to=f"{elsewhere}/internal"))
        with pytest.raises(FetchError, match="redirect"):
            await fetcher_for(fake).fetch(moved, MB)
        assert seen == []


async def test_a_declared_size_over_the_cap_is_refused_before_any_download(fake):
    file = as_incoming(fake.attachment("big.csv", b"x" * (2 * MB)))
    with pytest.raises(FileTooLarge) as caught:
        await fetcher_for(fake).fetch(file, MB)
    assert caught.value.limit_bytes == MB
    assert fake.cdn_requests == []


async def test_lying_sizes_and_chunked_bodies_are_stopped_at_the_cap(fake):
    lying = as_incoming(fake.attachment("big.csv", b"x" * (3 * MB), declared_size=10))
    with pytest.raises(FileTooLarge):
        await fetcher_for(fake).fetch(lying, MB)
    chunked = as_incoming(fake.attachment("big.csv", b"x" * (8 * MB), declared_size=10, chunked=True))
    with pytest.raises(FileTooLarge):
        await fetcher_for(fake).fetch(chunked, MB)
    fine = as_incoming(fake.attachment("ok.csv", CSV * 1000, chunked=True))
    assert await fetcher_for(fake).fetch(fine, MB) == CSV * 1000


# ---- the adapter hands attachments and its fetcher to the core ----------------------------------


@asynccontextmanager
async def stack_with_cdn(tmp_path: Path, **core_env: str) -> AsyncIterator[DiscordStack]:
    """The Discord stack with the fake's CDN configured as DISCORD_CDN_URL."""
    fake = FakeDiscord()
    await fake.start()
    settings = bot_settings(tmp_path, fake).model_copy(update={"discord_cdn_url": fake.cdn_base})
    try:
        async with (
            FakeOpenAI() as llm,
            core_stack(tmp_path, llm.base_url, **core_env) as core,
            running_bot(core, settings) as (bot, task),
        ):
            yield DiscordStack(fake, llm, core, bot, task, fake.user("alice"))
    finally:
        await fake.stop()
    assert not fake.refused, fake.refused


async def test_mentions_and_thread_follow_ups_hand_attachments_to_the_core(tmp_path):
    async with stack_with_cdn(tmp_path) as s:
        submitted: list[tuple[Any, Any]] = []
        real_submit = s.core.submit

        async def recording_submit(incoming: Any, sink: Any, fetcher: Any = None) -> Any:
            submitted.append((incoming, fetcher))
            return await real_submit(incoming, sink, fetcher)

        s.core.submit = recording_submit  # type: ignore[method-assign]
        s.llm.enqueue_text("About 11.5.")
        first = await s.ask("mean temp?", attachments=[s.fake.attachment("temps.csv", CSV)])
        await s.done(first["id"])
        s.llm.enqueue_text("Got it.")
        more = [s.fake.attachment("../../x.csv", CSV, channel_id=int(first["id"]))]
        await s.fake.send_message("and this?", s.alice, channel_id=int(first["id"]), attachments=more)
        await s.done(first["id"], turns=2)
        assert [[f.name for f in inc.files] for inc, _ in submitted] == [["temps.csv"], ["../../x.csv"]]
        for incoming, fetcher in submitted:
            assert await fetcher.fetch(incoming.files[0], MB) == CSV
