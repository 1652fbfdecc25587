"""The whole Slack path under test: fake Slack + fake LLM + real core + SlackBot serving real HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bot.slack.app import SlackBot
from core.service import Codebot
from core.settings import Settings
from core.types import ThreadKey
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.slack_fake import Call, FakeSlack
from tests.fakes.slack_threads import Message
from tests.harness import core_stack
from tests.slack.payloads import SECRET, TEAM, command_form, dumps, sign


@dataclass(frozen=True)
class Reply:
    """What an HTTP request to the bot got back, and how long the ack took."""

    status: int
    text: str
    seconds: float


@dataclass
class SlackStack:
    bot: SlackBot
    core: Codebot
    slack: FakeSlack
    llm: FakeOpenAI
    url: str
    http: aiohttp.ClientSession

    async def post(self, body: str, headers: dict[str, str]) -> Reply:
        started = time.perf_counter()
        async with self.http.post(f"{self.url}/slack/events", data=body, headers=headers) as resp:
            text = await resp.text()
        return Reply(resp.status, text, time.perf_counter() - started)

    async def event(
        self,
        body: dict[str, Any],
        *,
        secret: str = SECRET,
        ts: int | None = None,
        retry_num: int | None = None,
    ) -> Reply:
        """POST a signed event_callback the way Slack does."""
        raw = dumps(body)
        headers = {"Content-Type": "application/json", **sign(raw, secret, ts)}
        if retry_num is not None:
            headers |= {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"}
        return await self.post(raw, headers)

    async def command(self, text: str, *, user: str = "U123", channel: str = "C1") -> Reply:
        """POST a signed /codebot slash command."""
        raw = command_form(text, user=user, channel=channel, response_url=self.slack.response_url())
        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(raw)}
        return await self.post(raw, headers)

    def bot_key(self, channel: str, thread_ts: str) -> ThreadKey:
        return ThreadKey("slack", TEAM, channel, thread_ts)

    def thread(self, channel: str, thread_ts: str | None) -> list[str]:
        """What the bot's messages in one thread read now (a streamed answer: its text), in order."""
        return [m.text or m.streamed for m in self.slack.thread_messages(channel, thread_ts) if not m.files]

    def step_message(self, channel: str, thread_ts: str | None, step: int = 1) -> Message:
        """The live message of one step (it is posted with the code and edited as the step goes)."""
        return next(
            m
            for m in self.slack.thread_messages(channel, thread_ts)
            if m.text.startswith((f"Code (step {step})", f"Result (step {step})", "Safety review"))
        )

    async def wait_posts(
        self, channel: str, thread_ts: str | None, n: int, timeout_s: float = 20
    ) -> list[Call]:
        """Wait until at least n messages were posted in the thread."""
        return await self.slack.wait_for(
            lambda: (p := self.slack.thread_posts(channel, thread_ts)) and len(p) >= n and p, timeout_s
        )


def bot_settings(slack: FakeSlack) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        SLACK_BOT_TOKEN="xoxb-test-token",
        SLACK_APP_TOKEN="xapp-1-A1-test",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=slack.base_url,
        CODEBOT_SHUTDOWN_GRACE_S=5,
    )


@asynccontextmanager
async def slack_stack(
    tmp_path: Path,
    slack: FakeSlack,
    *,
    status_interval_s: float = 0.05,
    ack_budget_s: float = 2.0,
    **core_env: str,
) -> AsyncIterator[SlackStack]:
    """Run the bot in HTTP mode on an ephemeral loopback port; stop it (and the core) on exit."""
    async with FakeOpenAI() as llm, core_stack(tmp_path, llm.base_url, **core_env) as core:
        bot = SlackBot(
            core, bot_settings(slack), status_interval_s=status_interval_s, ack_budget_s=ack_budget_s
        )
        server = asyncio.create_task(bot.run_http("127.0.0.1", 0))
        try:
            await slack.wait_for(lambda: bot.port or server.done(), timeout_s=5)
            async with aiohttp.ClientSession() as http:
                yield SlackStack(bot, core, slack, llm, f"http://127.0.0.1:{bot.port}", http)
                await core.wait_idle(timeout=30)
        finally:
            await bot.stop()
            await server
