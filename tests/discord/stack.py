"""A running Discord stack for tests: fake Discord + real discord.py + real core + fake LLM."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.discord.client import DiscordBot
from bot.discord.messages import MessageOptions
from core.service import Codebot
from core.settings import Settings
from tests.fakes.discord_fake import Call, FakeDiscord
from tests.fakes.openai_fake import FakeOpenAI
from tests.harness import core_stack


@dataclass
class DiscordStack:
    fake: FakeDiscord
    llm: FakeOpenAI
    core: Codebot
    bot: DiscordBot
    run_task: asyncio.Task[None]  # DiscordBot.run()
    alice: dict[str, Any]

    def mention(self) -> str:
        return f"<@{self.fake.bot_user['id']}>"

    async def ask(self, text: str, **kw: Any) -> dict[str, Any]:
        """Alice mentions the bot in the text channel; returns the MESSAGE_CREATE payload."""
        kw.setdefault("mention_bot", True)
        return await self.fake.send_message(f"{self.mention()} {text}", kw.pop("author", self.alice), **kw)

    async def done(self, channel_id: int | str, turns: int = 1) -> None:
        """Wait until `turns` turns in this thread/DM ended (the question marked ✅/❌) and were persisted."""
        await self.fake.wait_until(lambda: len(self._finals(channel_id)) >= turns, within_s=60)
        await self.core.wait_idle(60)

    def _finals(self, channel_id: int | str) -> list[Call]:
        # The question is in the thread or DM itself, or (a new thread) the message the thread came from.
        marks = "(✅|❌)"
        here = self.fake.calls_to("PUT", rf"/channels/{channel_id}/messages/\d+/reactions/{marks}/@me")
        started = self.fake.calls_to("PUT", rf"/channels/\d+/messages/{channel_id}/reactions/{marks}/@me")
        return here + [c for c in started if c not in here]

    def live(self, channel_id: int | str) -> list[str]:
        """What the bot's messages in a thread or DM read now (edited in place, deleted ones gone)."""
        return [m["content"] for m in self.fake.live(channel_id)]

    async def quiet(self) -> None:
        """Give an event that should be ignored time to (not) cause anything."""
        await asyncio.sleep(0.3)
        await self.core.wait_idle(60)

    def posts(self, channel_id: int | str) -> list[Call]:
        """Messages the bot posted in a channel or thread, in order."""
        return self.fake.calls_to("POST", rf"/channels/{channel_id}/messages")

    def contents(self, channel_id: int | str) -> list[str]:
        """What the bot's messages in a channel or thread read now (drafts and steps are edited)."""
        return self.live(channel_id)

    def posted(self, channel_id: int | str) -> list[str]:
        """The content each message had when it was first posted, in order."""
        return [c.json["content"] for c in self.posts(channel_id)]


def bot_settings(tmp_path: Path, fake: FakeDiscord) -> Settings:
    env: dict[str, Any] = {
        "CODEBOT_DB": str(tmp_path / "codebot.db"),
        "DISCORD_TOKEN": fake.token,
        "DISCORD_API_URL": fake.api_base,
        "DISCORD_GATEWAY_URL": fake.gateway_url,
    }
    return Settings(_env_file=None, **env)  # type: ignore[call-arg]


@asynccontextmanager
async def running_bot(
    core: Codebot, settings: Settings, **kw: Any
) -> AsyncIterator[tuple[DiscordBot, asyncio.Task[None]]]:
    """Start a DiscordBot against the fake (yields it and its run() task); stop it gracefully afterwards."""
    kw.setdefault("message_options", MessageOptions(status_interval_s=0.05, typing_interval_s=0.5))
    bot = DiscordBot(core, settings, guild_ready_timeout=0, **kw)
    task = asyncio.create_task(bot.run())
    try:
        await asyncio.sleep(0)  # login() creates the ready event
        await asyncio.wait_for(bot.client.wait_until_ready(), 10)
        yield bot, task
    finally:
        await bot.stop(grace_s=10)
        await asyncio.gather(task, return_exceptions=True)


@asynccontextmanager
async def discord_stack(
    tmp_path: Path,
    *,
    deadline_s: float = 3.0,
    bot_kw: dict[str, Any] | None = None,
    **core_overrides: str,
) -> AsyncIterator[DiscordStack]:
    """Yield a connected bot; `core_overrides` are env names for the core (CODEBOT_ADMIN_IDS=...)."""
    fake = FakeDiscord(interaction_deadline_s=deadline_s)
    await fake.start()
    try:
        async with (
            FakeOpenAI() as llm,
            core_stack(tmp_path, llm.base_url, **core_overrides) as core,
            running_bot(core, bot_settings(tmp_path, fake), **(bot_kw or {})) as (bot, task),
        ):
            yield DiscordStack(fake, llm, core, bot, task, fake.user("alice"))
    finally:
        await fake.stop()
    # Real Discord would have answered these with a 400: no test may pass on a message nobody saw.
    assert not fake.refused, fake.refused
