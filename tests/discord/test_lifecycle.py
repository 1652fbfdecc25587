"""Start-up and shutdown: a graceful stop, a stop while Discord is unreachable, a rejected token."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import SecretStr

from bot.discord.client import DiscordBot
from core.settings import ConfigError
from tests.discord.stack import bot_settings, discord_stack
from tests.fakes.discord_fake import FakeDiscord
from tests.fakes.openai_fake import FakeOpenAI
from tests.harness import core_stack


async def test_stop_lets_the_thread_know_when_a_turn_is_abandoned(tmp_path):
    async with discord_stack(tmp_path) as s:
        s.llm.enqueue_delay(30)  # the model never answers in time
        msg = await s.ask("a question the bot cannot finish")
        await s.fake.wait_for("POST", rf"/channels/{msg['id']}/typing")  # the turn is under way
        await s.bot.stop(grace_s=0.2)
        texts = s.live(msg["id"])
        assert len(texts) == 1 and texts[0].startswith("⚠️") and "restarting" in texts[0]
        assert s.bot.client.is_closed()


async def test_stop_returns_promptly_while_discord_is_unreachable(tmp_path):
    async with discord_stack(tmp_path, bot_kw={"close_wait_s": 0.5}) as s:
        await s.fake.stop()  # the gateway drops; discord.py backs off before reconnecting
        await asyncio.sleep(1.5)
        started = time.monotonic()
        await s.bot.stop(grace_s=0)
        await asyncio.wait_for(asyncio.shield(s.run_task), 5)
        assert time.monotonic() - started < 3


async def test_a_rejected_token_is_a_clear_configuration_error(tmp_path):
    fake = FakeDiscord(token="the-real-token")
    await fake.start()
    try:
        async with FakeOpenAI() as llm, core_stack(tmp_path, llm.base_url) as core:
            wrong = bot_settings(tmp_path, fake).model_copy(update={"discord_token": SecretStr("old-token")})
            bot = DiscordBot(core, wrong, guild_ready_timeout=0)
            with pytest.raises(ConfigError, match="DISCORD_TOKEN was rejected"):
                await asyncio.wait_for(bot.run(), 10)
    finally:
        await fake.stop()


async def test_a_turn_interrupted_by_a_crash_is_reported_in_its_thread_at_start(tmp_path):
    from core.store.sqlite import SQLiteStore
    from core.types import ThreadKey

    channel = str(FakeDiscord().channel_id)  # ids are deterministic: the stack's fake has the same one
    store = SQLiteStore(tmp_path / "codebot.db")  # what a killed bot process left behind
    await store.open()
    key = ThreadKey("discord", "1", channel, channel)
    await store.start_turn(key, "m-crashed", "42", "chart the weekly signups", 1_700_000_000.0)
    await store.close()
    async with discord_stack(tmp_path) as s:
        await s.fake.wait_for("POST", rf"/channels/{channel}/messages")
        texts = s.contents(channel)
    assert "restarted while answering" in texts[0] and "chart the weekly signups" in texts[0]
