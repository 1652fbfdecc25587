"""Real `codebot slack --http` replicas on one PostgreSQL database, and what the tests ask of them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import aiohttp

from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.slack_fake import FakeSlack
from tests.reliability.bot_process import BotProcess, bot_environ, start_bot

LEASE_S = 6.0  # short, so a dead replica's turn is reported within seconds; renewed every 1.5 s
WAIT_S = 90.0  # generous: many leases, for a loaded machine
INTERRUPTED = "restarted while answering"


@asynccontextmanager
async def replicas(
    n: int, tmp_path: Path, slack: FakeSlack, llm: FakeOpenAI, dsn: str
) -> AsyncIterator[list[BotProcess]]:
    env = bot_environ(
        tmp_path, slack.base_url, llm.base_url, CODEBOT_DB=dsn, CODEBOT_TURN_LEASE_S=str(LEASE_S)
    )
    async with AsyncExitStack() as stack:
        bots = []
        for i in range(n):
            cwd = tmp_path / f"replica{i}"
            cwd.mkdir()
            bot = await start_bot(env, cwd, timeout_s=60)
            stack.push_async_callback(bot.kill)
            bots.append(bot)
        yield bots


def texts(slack: FakeSlack, root: str) -> list[str]:
    return [c.params["text"] for c in slack.thread_posts("C1", root)]


async def ask_and_wait(
    bot: BotProcess, http: aiohttp.ClientSession, slack: FakeSlack, body: dict, root: str, answer: str
) -> None:
    assert await bot.send(http, body) == 200
    await slack.wait_for(lambda: answer in texts(slack, root), timeout_s=WAIT_S)


async def wait_for_log(bot: BotProcess, pred: Callable[[str], bool], timeout_s: float = WAIT_S) -> str:
    """Wait until the bot's stderr has a line matching `pred` (the log is drained as it is written)."""
    async with asyncio.timeout(timeout_s):
        while True:
            found = next((line for line in bot.log if pred(line)), None)
            if found is not None:
                return found
            await asyncio.sleep(0.05)  # the drain task appends lines; nothing to await on directly
